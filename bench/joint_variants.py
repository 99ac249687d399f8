"""Joint-planning variants that were tried and not adopted (docs/ranking.md), reproducible.

Each variant is re-tuned on train with `matcher tune`'s stage-2 grid (penalty × margin × candidates,
best Jaccard of the first recommendation, hit@1 on single-institute requests within one point of joint
off) and then read on dev. Also: how well multi-institute requests can be told apart (ROC AUC).

    python bench/joint_variants.py          # ~15 minutes on 2 cores (retrieval once, ranking per config)
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matcher.config import load_config  # noqa: E402
from matcher.datasets import load_labeled  # noqa: E402
from matcher.engine import Matcher  # noqa: E402
from matcher.evaluation.metrics import jaccard_first  # noqa: E402
from matcher.evaluation.runner import make_row  # noqa: E402
from matcher.evaluation.tune import JOINT_GRID  # noqa: E402
from matcher.joint import JointPlanner, coverage, coverage_matrix  # noqa: E402


class Variant(JointPlanner):
    """The planner with a different coverage reference (`ref`) or a per-member lead rule (`lead`)."""

    def __init__(self, ref: str | int | None = None, lead: float = 0.0):
        self.ref = ref
        self.lead = lead

    def coverage(self, rows, candidates):
        if self.ref is None:
            return super().coverage(rows, candidates)
        ordered = -np.sort(-rows, axis=1)
        lo = np.median(rows, axis=1, keepdims=True) if self.ref == "median" else ordered[:, [self.ref]]
        span = ordered[:, [0]] - lo
        C = np.clip(np.divide(rows - lo, span, out=np.zeros_like(rows), where=span > 0), 0, 1)
        return C[:, list(candidates)]

    def propose(self, rows, labels, candidates, score, institute_ids, config):
        teams = super().propose(rows, labels, candidates, score, institute_ids, config)
        if self.lead <= 0:
            return teams
        need_scores = rows[:-1]
        first = candidates[0]
        best = np.maximum(need_scores.max(axis=1), 1e-9)

        def leads(member: int) -> bool:
            return bool(np.any((need_scores[:, member] - need_scores[:, first]) / best >= self.lead))

        return [t for t in teams if all(leads(m) for m in t[1] if m != first)]


def measure(matcher: Matcher, data) -> dict[str, float]:
    golds, prepared, retrieved = data
    rows = [make_row(g, r, 0.0) for g, r in zip(golds, matcher.rank(prepared, retrieved), strict=True)]
    ranked = [r for r in rows if r.gold]
    single = [r for r in ranked if len(r.gold) == 1]
    multi = [r for r in ranked if len(r.gold) > 1]
    return {
        "jaccard": float(np.mean([jaccard_first(r.recommendations, r.gold) for r in ranked])),
        "hit1_single": float(np.mean([r.metrics["hit@1"] for r in single])),
        "cover3_multi": float(np.mean([r.metrics["full_cover@3"] for r in multi])),
        "padded_single": float(np.mean([len(r.recommendations[0]) > 1 for r in single if r.recommendations])),
        "team_first_multi": float(
            np.mean([len(r.recommendations[0]) > 1 for r in multi if r.recommendations])
        ),
    }


def tuned(base, indexes, data, **variant) -> tuple:
    off = measure(Matcher(indexes, base.replace(joint=False)), data["train"])
    best = None
    for penalty, margin, cands in JOINT_GRID:
        cfg = base.replace(joint_penalty=penalty, joint_margin=margin, joint_candidates=cands)
        m = Matcher(indexes, cfg, planner=Variant(**variant))
        s = measure(m, data["train"])
        if s["hit1_single"] >= off["hit1_single"] - 0.01 and (
            best is None or (s["jaccard"], s["cover3_multi"]) > (best[1]["jaccard"], best[1]["cover3_multi"])
        ):
            best = (m, s)
    return best[0], best[1], measure(best[0], data["dev"])


def gate_features(matcher: Matcher, data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per request with 2+ needs: features, is-multi label, and the planner's own coverage gain."""
    golds, prepared, retrieved = data
    cfg = matcher.config
    hits = matcher.ranker.fuse(retrieved, len(prepared.queries))
    X, y, gain = [], [], []
    for g, needs, (a, b) in zip(golds, prepared.needs, prepared.spans, strict=True):
        if not g.gold or len(needs) < 2:
            continue
        whole, need_hits = hits[a], hits[a + 1 : b]
        need_full = np.array([h.institute_scores for h in need_hits])
        score = matcher.ranker.mix(hits[a:b])
        order = np.argsort(-score)
        cands = list(order[: cfg.joint_candidates])
        C = coverage_matrix(np.vstack([need_full[:, cands], whole.institute_scores[cands]]))
        w = np.full(len(C), 1 / len(C))
        single = max(coverage(C, w, [i]) for i in range(len(cands)))
        pair = max(coverage(C, w, list(p)) for p in itertools.combinations(range(len(cands)), 2))
        winners = need_full.argmax(axis=1)
        deficit = (need_full.max(axis=1) - need_full[:, order[0]]) / np.maximum(need_full.max(axis=1), 1e-9)
        p = np.exp((score[order[:10]] - score[order[0]]) / 0.05)
        p /= p.sum()
        X.append(
            [
                len(needs),
                score[order[0]],
                score[order[1]],
                score[order[1]] / score[order[0]],
                pair - single,
                len(set(winners)),
                np.mean(winners != order[0]),
                deficit.max(),
                deficit.mean(),
                -(p * np.log(p)).sum(),
                C[:-1, 1].max(),
                whole.institute_scores[order[1]] / max(whole.institute_scores[order[0]], 1e-9),
            ]
        )
        y.append(len(g.gold) > 1)
        gain.append(pair - single)
    return np.array(X), np.array(y), np.array(gain)


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    base = load_config("hybrid")
    matcher = Matcher.from_config(base, rebuild=False)
    data = {}
    for split in ("train", "dev"):
        golds = load_labeled(ROOT / f"data/requests/{split}.jsonl", matcher.catalog)
        prepared = matcher.prepare([g.request for g in golds])
        data[split] = (golds, prepared, matcher.retrieve(prepared.queries))

    def show(label: str, s: dict) -> str:
        return f"{label:6} " + "  ".join(f"{k} {v:.3f}" for k, v in s.items())

    print(show("off dev", measure(Matcher(matcher.indexes, base.replace(joint=False)), data["dev"])))
    print(show("now dev", measure(Matcher(matcher.indexes, base), data["dev"])))
    for variant in [{"ref": r} for r in ("median", 3, 5, 10)] + [
        {"lead": x} for x in (0.02, 0.05, 0.1, 0.15)
    ]:
        m, train, dev = tuned(base, matcher.indexes, data, **variant)
        c = m.config
        print(
            f"{variant} tuned penalty {c.joint_penalty} margin {c.joint_margin}"
            f" candidates {c.joint_candidates}"
        )
        print("   " + show("train", train))
        print("   " + show("dev", dev), flush=True)

    Xt, yt, gt = gate_features(matcher, data["train"])
    Xd, yd, gd = gate_features(matcher, data["dev"])
    print(
        f"multi-institute share (2+ needs): train {yt.mean():.3f} of {len(yt)},"
        f" dev {yd.mean():.3f} of {len(yd)}"
    )
    print(f"AUC planner gain: train {roc_auc_score(yt, gt):.3f}, dev {roc_auc_score(yd, gd):.3f}")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = cross_val_predict(model, Xt, yt, cv=5, method="predict_proba")[:, 1]
    model.fit(Xt, yt)
    print(
        f"AUC logistic gate: train 5-fold CV {roc_auc_score(yt, cv):.3f},"
        f" dev {roc_auc_score(yd, model.predict_proba(Xd)[:, 1]):.3f}"
    )
    print(
        f"AUC number of needs alone: train {roc_auc_score(yt, Xt[:, 0]):.3f},"
        f" dev {roc_auc_score(yd, Xd[:, 0]):.3f}"
    )


if __name__ == "__main__":
    main()

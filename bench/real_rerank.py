"""Re-ranker variants for real cases, chosen by grouped CV on real-train; dev sets read once, reported.

    python bench/real_rerank.py [--config hybrid] [--out runs/real_rerank]
    python bench/real_rerank.py --ablations [--seeds 3]   # feature groups by CV on real-train only

Collects the engine's feature rows (retrieval included, query vectors from the shared query cache) for
synthetic train, real-train, synthetic dev and real-dev once per catalog (cached under --out), then fits:

  synthetic   the re-ranker as before: synthetic train only, C by CV on it
  joint-data  synthetic train + real-train, real cases weighted (1, 3, 10, 30), C and weight by CV MRR
              on the held-out real-train requests
  real-only   real-train alone, C by CV on it

Selection uses only the CV column (held-out real-train MRR); the dev columns are printed for the
record (ranking only: joint planning off, as `matcher train reranker` scores it).

`--ablations` fits the joint-data learner without one feature group at a time (`rerank.FEATURE_GROUPS`),
on synthetic train + real-train only, and prints held-out real-train MRR,
hit@1 and hit@3: which evidence earns its place.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matcher.batch import open_query_cache
from matcher.config import load_config
from matcher.datasets import load_labeled
from matcher.engine import Matcher
from matcher.evaluation.metrics import jaccard_first
from matcher.evaluation.runner import make_row
from matcher.evaluation.tune import best_abstain_threshold
from matcher.learning.reranker import (
    Collected,
    collect,
    concat,
    fit_reranker,
    ranking_scores,
)
from matcher.rerank import FEATURE_GROUPS, FEATURE_NAMES, PRIOR_COL, SCORE_COL, LinearReranker

SETS = {
    "train": "data/requests/train.jsonl",
    "real-train": "data/requests/real-train.jsonl",
    "dev": "data/requests/dev.jsonl",
    "real-dev": "data/requests/real-dev.jsonl",
}


def collected(matcher: Matcher, name: str, out: Path) -> Collected:
    """Feature rows of one set, cached per catalog hash and feature list."""
    key = f"{matcher.catalog.content_hash[:12]}-{len(FEATURE_NAMES)}"
    path = out / f"{name}-{key}.npz"
    if path.is_file():
        z = np.load(path)
        return Collected(list(z["ids"]), z["features"], z["labels"], list(z["institutes"]))
    golds = load_labeled(SETS[name], matcher.catalog)
    data = collect(matcher, golds)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(
        path, ids=data.request_ids, features=data.features, labels=data.labels, institutes=data.institute_ids
    )
    return data


def read(model: LinearReranker | None, data: Collected) -> dict[str, float]:
    """Ranking metrics (hit@1, hit@3, MRR) of a model, or of the engine's score when None."""
    ranked = data.labels.any(axis=1)
    if model is None:
        scores = data.features[..., SCORE_COL]
    else:
        x = data.features.copy()
        x[..., PRIOR_COL] = model.prior_vector(data.institute_ids)
        scores = model.score(x.reshape(-1, x.shape[-1])).reshape(x.shape[:2])
    m = ranking_scores(scores, data.labels)
    hit3 = []
    for s, y in zip(scores[ranked], data.labels[ranked], strict=True):
        order = np.lexsort((np.arange(len(s)), -s))
        order = order[s[order] > 0][:3]
        hit3.append(float(y[order].any()))
    return {
        "hit@1": float(m["hit@1"][ranked].mean()),
        "hit@3": float(np.mean(hit3)),
        "mrr": float(m["mrr"][ranked].mean()),
    }


WEIGHTS = (1.0, 3.0, 10.0, 30.0)
"""The real cases' weights tried, as `matcher train reranker` tries them."""


def ablations(both: Collected, real_mask: np.ndarray, seeds: int = 1) -> dict[str, dict]:
    """Joint-data CV on real-train with all features, then without each group in turn; with several
    seeds (fold splits 13, 14, …), the mean and standard deviation of each held-out metric, C and
    weight chosen per seed (92 requests: one split's luck moves MRR by about 0.01)."""
    rows = {}
    for name, drop in {"all features": (), **{f"− {g}": (g,) for g in FEATURE_GROUPS}}.items():
        reports = [
            fit_reranker(
                both, weighted=real_mask, weight_grid=WEIGHTS, select=real_mask, without=drop, seed=13 + i
            )[1]
            for i in range(seeds)
        ]
        row: dict = {}
        for key in ("cv_mrr", "cv_hit@1", "cv_hit@3"):
            values = np.array([r[key] for r in reports])
            row[key] = round(float(values.mean()), 4)
            if seeds > 1:
                row[f"{key}_sd"] = round(float(values.std()), 4)
        row["C"] = [r["C"] for r in reports]
        row["weight"] = [r["weight"] for r in reports]
        rows[name] = row
        print(name, json.dumps(row), flush=True)
    return rows


GAPS = (0.0, 0.3)
RATIOS = (0.0, 0.3, 0.5, 0.7, 0.9)


def abstain_threshold(model: LinearReranker, data: Collected) -> tuple[float, float]:
    """The confidence threshold with the best F1 of abstaining on training requests that fit no
    institute (as `matcher tune` stage 3 does for the engine's scores), and that F1."""
    x = data.features.copy()
    x[..., PRIOR_COL] = model.prior_vector(data.institute_ids)
    conf = model.score(x.reshape(-1, x.shape[-1])).reshape(x.shape[:2]).max(axis=1)
    return best_abstain_threshold(conf, ~data.labels.any(axis=1))


def joint_sweep(matcher: Matcher, sets: list[str]) -> tuple[float, dict]:
    """`joint_first_gap` and `joint_first_ratio` on the training sets: the pair with the best Jaccard@1
    (first recommendation vs gold, all ranked requests) among those that keep a team first on at most
    15% of single-institute requests; retrieval runs once, ranking once per pair."""
    golds = [g for name in sets for g in load_labeled(SETS[name], matcher.catalog)]
    prepared = matcher.prepare([g.request for g in golds])
    retrieved = matcher.retrieve(prepared.queries)
    table = {}
    off = matcher.config.replace(joint_first_rule=False)
    for gap, ratio in [(None, None), *((g, r) for g in GAPS for r in RATIOS)]:
        cfg = (
            off
            if gap is None
            else off.replace(joint_first_rule=True, joint_first_gap=gap, joint_first_ratio=ratio)
        )
        results = matcher.with_config(cfg).rank(prepared, retrieved)
        rows = [make_row(g, r, 0.0) for g, r in zip(golds, results, strict=True)]
        ranked = [r for r in rows if r.gold]
        table["off" if gap is None else f"{gap}|{ratio}"] = {
            "team_first": float(np.mean([r.metrics["team_first"] for r in ranked if len(r.gold) == 1])),
            "full_cover@3": float(np.mean([r.metrics["full_cover@3"] for r in ranked if len(r.gold) >= 2])),
            "jaccard@1": float(np.mean([jaccard_first(r.recommendations, r.gold) for r in ranked])),
            "hit@1": float(np.mean([r.metrics["hit@1"] for r in ranked])),
        }
    allowed = [k for k in table if k != "off" and table[k]["team_first"] <= 0.15] or [
        k for k in table if k != "off"
    ]
    best = max(
        allowed,
        key=lambda k: (round(table[k]["jaccard@1"], 6), table[k]["full_cover@3"], -table[k]["team_first"]),
    )
    return best, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/real_rerank"))
    parser.add_argument("--reuse", action="store_true", help="Keep the fitted variants; redo the sweeps.")
    parser.add_argument(
        "--ablations", action="store_true", help="Feature groups by CV on real-train; reads no dev set."
    )
    parser.add_argument("--seeds", type=int, default=1, help="Fold splits averaged by --ablations.")
    args = parser.parse_args()
    cfg = load_config(args.config).replace(reranker=None)
    matcher = Matcher.from_config(cfg)
    store, _ = open_query_cache(cfg.model_dir)
    if store is not None:
        matcher = matcher.with_query_cache(store)
    names = ("train", "real-train") if args.ablations else tuple(SETS)
    data = {name: collected(matcher, name, args.out / "features") for name in names}
    n_syn, n_real = len(data["train"].request_ids), len(data["real-train"].request_ids)
    both = concat([data["train"], data["real-train"]])
    real_mask = np.r_[np.zeros(n_syn, bool), np.ones(n_real, bool)]
    if args.ablations:
        rows = ablations(both, real_mask, args.seeds)
        (args.out / "ablations.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1))
        return

    saved = args.out / "variants.json"
    if args.reuse and saved.is_file():
        rows = json.loads(saved.read_text(encoding="utf-8"))["variants"]
    else:
        variants: dict[str, tuple[LinearReranker | None, dict]] = {"engine (no re-ranker)": (None, {})}
        variants["synthetic"] = fit_reranker(data["train"])
        variants["joint-data"] = fit_reranker(both, weighted=real_mask, weight_grid=WEIGHTS, select=real_mask)
        variants["real-only"] = fit_reranker(data["real-train"])
        rows = {}
        for name, (model, report) in variants.items():
            if name in ("joint-data", "real-only"):
                cv = report["cv_mrr"]
            else:  # trained without real cases: real-train is held out as a whole
                cv = read(model, data["real-train"])["mrr"]
            rows[name] = {
                "cv_mrr_real_train": round(cv, 4),
                "cv_hit@3_real_train": round(report["cv_hit@3"], 4) if "cv_hit@3" in report else None,
                "C": report.get("C"),
                "weight": report.get("weight"),
                **{
                    f"{s}:{k}": round(v, 4)
                    for s in ("dev", "real-dev")
                    for k, v in read(model, data[s]).items()
                },
            }
            if model is not None:
                model.save(args.out / f"{name}.json")
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    best = max(("synthetic", "joint-data", "real-only"), key=lambda n: rows[n]["cv_mrr_real_train"])
    print(f"chosen by CV on real-train: {best}")
    ranked = matcher.with_config(matcher.config.replace(reranker=str(args.out / f"{best}.json")))
    ranked = Matcher(ranked.indexes, ranked.config, LinearReranker.load(args.out / f"{best}.json"))
    threshold, f1 = abstain_threshold(ranked.reranker, both)
    print(f"abstain_threshold {threshold} (F1 {f1:.3f} on training requests that fit no institute)")
    gap, sweep = joint_sweep(ranked, ["train", "real-train"])
    print(json.dumps({"joint_first_gap|ratio": gap, "sweep": sweep}, indent=1))
    report = {
        "variants": rows,
        "chosen": best,
        "abstain_threshold": threshold,
        "abstain_f1_train": f1,
        "joint_first_gap": gap,
        "joint_sweep": sweep,
    }
    (args.out / "variants.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8"
    )


if __name__ == "__main__":
    main()

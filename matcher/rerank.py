"""The learned re-ranker at match time: per-institute features and a linear model read from JSON.

`institute_features` is the ONE function that turns a request's retrieval outcome into feature rows;
the ranking stage (`ranking.InstituteRanker.features`) calls it both when matching and when `matcher
train reranker` collects training rows, so training and serving cannot drift apart. The model is a
standardised logistic regression stored as plain JSON (no pickle: a model file can be read, diffed
and trusted).

Per-retriever evidence per institute is not in `QueryHits` (it keeps fused record hits and each
retriever's peak per query), so the retriever peaks enter as query-level features: they do not
reorder institutes, they calibrate the probability that is used as confidence for abstention.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, get_args

import numpy as np

from matcher.atomic import write_text_atomic
from matcher.cards import CARD_KINDS
from matcher.config import Retriever
from matcher.problems import InputError, Problem
from matcher.region import REGION_FEATURES
from matcher.schema import KINDS

if TYPE_CHECKING:
    from matcher.hits import QueryHits
    from matcher.schema import Capability

FORMAT = "matcher-reranker/1"
TOP_HITS = 20
"""Evidence counts are taken among the whole request's best fused record hits."""
NEAR_BEST = 0.9
"""An institute is near-best for a need when it scores at least this share of the need's best."""
PEAK_RETRIEVERS: tuple[str, ...] = get_args(Retriever)
"""Every retriever name, in `config.Retriever` order (the feature order saved models expect)."""

FEATURE_NAMES: tuple[str, ...] = (
    "score",  # the engine's combined (fused, aggregated, whole + needs) institute score
    "score_rel",  # score / best score of the request
    "score_gap",  # best score − score
    "rank_log",  # log(1 + rank) under score, rank 0 = first
    "is_top",
    "whole",  # institute score for the whole request
    "whole_rank_log",
    "need_mean",  # mean institute score over the needs (whole when the request has no needs)
    "need_max",
    "need_best",  # share of needs for which the institute is the best
    "need_near",  # share of needs for which it is within NEAR_BEST of the best
    "rec_max",  # best fused record score of the institute (whole request)
    "rec_mean_top",  # mean fused score of its records among the top hits
    "rec_rank_log",  # log(1 + rank) of its best record among all fused hits
    "hits_top",  # share of the top hits that are its records
    *(f"{k}_top" for k in KINDS),  # share of the top hits that are its records of each kind
    *(f"{k}_max" for k in KINDS),  # best fused score of its records of each kind (profile, programme …)
    *REGION_FEATURES,  # nearness of its head office and seats to the company (region.region_matrix)
    *(f"card_{k}_{v}" for k in CARD_KINDS for v in ("rel", "rank_log")),  # BM25 of its card (cards)
    "prior",  # log frequency as gold in the training requests
    *(f"peak_{r}" for r in PEAK_RETRIEVERS),  # the retriever's best raw score for the request
)
SCORE_COL = FEATURE_NAMES.index("score")
PRIOR_COL = FEATURE_NAMES.index("prior")
REGION_COLS = [FEATURE_NAMES.index(name) for name in REGION_FEATURES]
CARD_COLS = [FEATURE_NAMES.index(f"card_{k}_rel") for k in CARD_KINDS]
"""Each card kind's `rel` column; its `rank_log` column follows."""
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "cards": tuple(n for n in FEATURE_NAMES if n.startswith("card_")),
    "region": REGION_FEATURES,
    "profile+programme": tuple(f"{k}_{v}" for k in ("profile", "programme") for v in ("top", "max")),
    "per-kind hits": tuple(f"{k}_{v}" for k in KINDS for v in ("top", "max")),
    "prior": ("prior",),
}
"""Named groups of features a model may be trained without (`matcher train reranker --without`)."""
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}


def record_kinds(records: Sequence[Capability]) -> np.ndarray:
    """Kind code (index into KINDS) of every record, aligned with the index's `owner` array."""
    return np.fromiter((_KIND_CODE[r.kind.value] for r in records), dtype=np.int64, count=len(records))


def _rank_log(values: np.ndarray) -> np.ndarray:
    """log(1 + rank) of each entry under descending value, ties broken by position (as the engine does)."""
    order = np.lexsort((np.arange(len(values)), -values))
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values))
    return np.log1p(ranks)


def institute_features(
    score: np.ndarray,
    whole: QueryHits,
    need_hits: Sequence[QueryHits],
    owner: np.ndarray,
    n_inst: int,
    *,
    kinds: np.ndarray | None = None,
    prior: np.ndarray | None = None,
    region: np.ndarray | None = None,
    cards: np.ndarray | None = None,
) -> np.ndarray:
    """Feature rows `(n_inst, len(FEATURE_NAMES))` for one request.

    Args:
        score: the engine's institute scores before re-ranking.
        whole: hits of the whole request; need_hits: hits of each need (may be empty).
        owner: institute position of every record; n_inst: number of institutes.
        kinds: kind code of every record (`record_kinds`); None leaves the kind counts at 0.
        prior: per-institute log prior (`LinearReranker.prior_vector`); None leaves it at 0.
        region: `region.region_matrix` rows `(n_inst, len(REGION_FEATURES))`; None leaves them at 0.
        cards: `cards.InstituteCards.scores` of the request, `(n_inst, len(CARD_KINDS))` raw BM25;
            each kind becomes the score over the request's best card score and the rank among
            institutes. None (or no card matching a word) leaves them at 0.
    """
    score = np.asarray(score, dtype=np.float64)
    out = np.zeros((n_inst, len(FEATURE_NAMES)), dtype=np.float64)
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    best = float(score.max()) if n_inst else 0.0
    out[:, col["score"]] = score
    out[:, col["score_rel"]] = score / best if best > 0 else 0.0
    out[:, col["score_gap"]] = best - score
    out[:, col["rank_log"]] = _rank_log(score)
    out[:, col["is_top"]] = out[:, col["rank_log"]] == 0
    w = np.asarray(whole.institute_scores, dtype=np.float64)
    out[:, col["whole"]] = w
    out[:, col["whole_rank_log"]] = _rank_log(w)

    rows = np.array([h.institute_scores for h in need_hits], dtype=np.float64) if need_hits else w[None, :]
    peak = rows.max(axis=1, keepdims=True)
    has = peak > 0
    out[:, col["need_mean"]] = rows.mean(axis=0)
    out[:, col["need_max"]] = rows.max(axis=0)
    out[:, col["need_best"]] = ((rows >= peak) & has).mean(axis=0)
    out[:, col["need_near"]] = ((rows >= NEAR_BEST * peak) & has).mean(axis=0)

    ids, scores = np.asarray(whole.ids, dtype=np.int64), np.asarray(whole.scores, dtype=np.float64)
    if len(ids):
        order = np.lexsort((ids, -scores))  # fused hits come unordered: best first, ties by record
        ids, scores = ids[order], scores[order]
        inst = owner[ids]
        rec_max = np.zeros(n_inst)
        np.maximum.at(rec_max, inst, scores)
        out[:, col["rec_max"]] = rec_max
        first = np.full(n_inst, float(len(ids)))
        np.minimum.at(first, inst, np.arange(len(ids), dtype=np.float64))
        out[:, col["rec_rank_log"]] = np.log1p(first)
        top_inst, top_scores = inst[:TOP_HITS], scores[:TOP_HITS]
        count = np.bincount(top_inst, minlength=n_inst).astype(np.float64)
        total = np.bincount(top_inst, weights=top_scores, minlength=n_inst)
        out[:, col["rec_mean_top"]] = np.divide(total, count, out=np.zeros(n_inst), where=count > 0)
        out[:, col["hits_top"]] = count / TOP_HITS
        if kinds is not None:
            top_kinds = kinds[ids[:TOP_HITS]]
            all_kinds = kinds[ids]
            for code, kind in enumerate(KINDS):
                mine = top_inst[top_kinds == code]
                out[:, col[f"{kind}_top"]] = np.bincount(mine, minlength=n_inst) / TOP_HITS
                of_kind = all_kinds == code
                best = np.zeros(n_inst)
                np.maximum.at(best, inst[of_kind], scores[of_kind])
                out[:, col[f"{kind}_max"]] = best
    else:
        out[:, col["rec_rank_log"]] = 0.0
    if prior is not None:
        out[:, PRIOR_COL] = prior
    if region is not None:
        out[:, REGION_COLS] = region
    if cards is not None:
        for j, c in enumerate(CARD_COLS):
            s = np.asarray(cards[:, j], dtype=np.float64)
            top = float(s.max()) if n_inst else 0.0
            if top > 0:
                out[:, c] = s / top
                out[:, c + 1] = _rank_log(s)
    for name in PEAK_RETRIEVERS:
        out[:, col[f"peak_{name}"]] = float(whole.peaks.get(name, 0.0))
    return out


def log_prior(counts: np.ndarray, n_requests: int) -> np.ndarray:
    """Add-one smoothed log frequency of each institute as gold: log((c + 1) / (n + n_inst))."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.log((counts + 1.0) / (n_requests + len(counts)))


@dataclass
class LinearReranker:
    """A standardised linear model over some of `FEATURE_NAMES`; `score` gives P(institute is gold).

    Scikit-learn style: fitted values end in `_`-free plain arrays because it is loaded, not fitted,
    here (fitting lives in `matcher.learning.reranker`). An institute the retrievers did not find at
    all (score 0) keeps score 0, so it is never recommended on its prior alone. A model reads the
    columns it was trained on (`feature_names`, any subset of this version's FEATURE_NAMES), so a
    model trained before a feature was added keeps loading, and features it does not use (the cards)
    need not be computed.
    """

    feature_names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    prior: dict[str, float] = field(default_factory=dict)
    prior_default: float = 0.0
    meta: dict = field(default_factory=dict)

    def prior_vector(self, institute_ids: Sequence[str]) -> np.ndarray:
        """The prior feature for institutes in catalog order (unknown institutes get the default)."""
        return np.array([self.prior.get(i, self.prior_default) for i in institute_ids], dtype=np.float64)

    @cached_property
    def columns(self) -> list[int]:
        """Positions of the model's features in the full feature rows."""
        return [FEATURE_NAMES.index(n) for n in self.feature_names]

    @cached_property
    def uses_cards(self) -> bool:
        """Whether the model reads the institute cards (else the ranker skips them)."""
        return any(n in FEATURE_GROUPS["cards"] for n in self.feature_names)

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """Linear score of full feature rows `(n, len(FEATURE_NAMES))`."""
        z = (np.asarray(features, dtype=np.float64)[:, self.columns] - self.mean) / self.scale
        return z @ self.coef + self.intercept

    def score(self, features: np.ndarray) -> np.ndarray:
        """New institute scores in (0, 1); 0 where the engine found no evidence at all."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(features)))
        p[np.asarray(features)[:, SCORE_COL] <= 0] = 0.0
        return p

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "feature_names": list(self.feature_names),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": float(self.intercept),
            "prior": self.prior,
            "prior_default": self.prior_default,
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "reranker") -> LinearReranker:
        """Validate and build; raises InputError naming what is wrong (format, features, shapes)."""

        def bad(message: str, key: str | None = None) -> InputError:
            return InputError([Problem(source, message, field=key)])

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise bad(f"not a re-ranker file (expected format {FORMAT!r})", "format")
        names = tuple(data.get("feature_names", ()))
        unknown = [n for n in names if n not in FEATURE_NAMES]
        if not names or unknown or len(set(names)) != len(names):
            raise bad(
                f"features unknown to this version ({', '.join(unknown) or 'none or repeated'}); retrain "
                "with `matcher train reranker`",
                "feature_names",
            )
        arrays = {}
        for key in ("mean", "scale", "coef"):
            value = np.asarray(data.get(key, []), dtype=np.float64)
            if value.shape != (len(names),) or not np.all(np.isfinite(value)):
                raise bad(f"expected {len(names)} finite numbers", key)
            arrays[key] = value
        if np.any(arrays["scale"] <= 0):
            raise bad("scales must be positive", "scale")
        intercept = data.get("intercept")
        if not isinstance(intercept, (int, float)) or not math.isfinite(intercept):
            raise bad("expected a finite number", "intercept")
        prior = data.get("prior", {})
        if not isinstance(prior, dict) or not all(isinstance(v, (int, float)) for v in prior.values()):
            raise bad("expected a mapping of institute id to number", "prior")
        return cls(
            names,
            arrays["mean"],
            arrays["scale"],
            arrays["coef"],
            float(intercept),
            {str(k): float(v) for k, v in prior.items()},
            float(data.get("prior_default", 0.0)),
            dict(data.get("meta", {})),
        )

    @classmethod
    def load(cls, path: str | Path) -> LinearReranker:
        """Read a model written by `matcher train reranker` (InputError if missing or malformed)."""
        path = Path(path)
        if not path.is_file():
            raise InputError([Problem(str(path), "re-ranker file not found (run `matcher train reranker`)")])
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError([Problem(str(path), f"invalid JSON: {exc}")]) from None
        return cls.from_dict(data, source=str(path))

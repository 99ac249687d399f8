"""Fitting the learned re-ranker on the training requests (pointwise logistic regression).

Feature rows come from the ranking stage itself (`InstituteRanker.features`, the code that feeds the
re-ranker when matching), after the matcher's own query preparation and retrieval. Only the
institute prior depends on the labels, so it is filled in per fold: held-out requests see the prior
of the training folds; training rows see a leave-one-out prior (their own label removed), so the
model cannot learn to trust a prior that saw the answer. The regularisation C is chosen by
GroupKFold cross-validation (groups = requests) on mean MRR.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from matcher.datasets import GoldRequest
from matcher.engine import Matcher
from matcher.ranking import InstituteRanker
from matcher.rerank import FEATURE_GROUPS, FEATURE_NAMES, PRIOR_COL, SCORE_COL, LinearReranker, log_prior

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


@dataclass
class Collected:
    """Feature rows of every training request (prior column left at 0) and their gold labels."""

    request_ids: list[str]
    features: np.ndarray
    """(n_requests, n_institutes, n_features)"""
    labels: np.ndarray
    """(n_requests, n_institutes) bool"""
    institute_ids: list[str]


def collect(
    matcher: Matcher,
    golds: Sequence[GoldRequest],
    *,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> Collected:
    """Prepare and retrieve every request, and keep the ranking stage's per-institute feature rows."""
    ranker = InstituteRanker(matcher.indexes, matcher.config)  # no model: the prior column stays 0
    ids = matcher.catalog.institute_ids
    pos = {inst: i for i, inst in enumerate(ids)}
    features, labels = [], []
    for start in range(0, len(golds), batch_size):
        chunk = golds[start : start + batch_size]
        prepared = matcher.prepare([g.request for g in chunk])
        hits = ranker.fuse(matcher.retrieve(prepared.queries), len(prepared.queries))
        for gold, text, (a, b) in zip(chunk, prepared.texts, prepared.spans, strict=True):
            region, cards = ranker.region(gold.request, text), ranker.cards(text)
            features.append(ranker.features(hits[a:b], region=region, cards=cards))
            row = np.zeros(len(ids), dtype=bool)
            row[[pos[g] for g in gold.gold]] = True
            labels.append(row)
        if progress:
            progress(min(start + batch_size, len(golds)), len(golds))
    n_feat = len(FEATURE_NAMES)
    return Collected(
        [g.id for g in golds],
        np.array(features).reshape(len(golds), len(ids), n_feat),
        np.array(labels).reshape(len(golds), len(ids)),
        list(ids),
    )


def concat(parts: Sequence[Collected]) -> Collected:
    """Several collected sets as one (same catalog, so the same institutes)."""
    return Collected(
        [i for p in parts for i in p.request_ids],
        np.concatenate([p.features for p in parts]),
        np.concatenate([p.labels for p in parts]),
        list(parts[0].institute_ids),
    )


def _with_prior(features: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Copy of the rows with the prior column set (prior: (n_inst,) or (n_requests, n_inst))."""
    out = features.copy()
    out[..., PRIOR_COL] = prior
    return out


def _loo_prior(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each request's prior from the weighted label counts without its own labels: (n_requests, n_inst)."""
    w = weights[:, None]
    counts = (labels * w).sum(axis=0)
    n = weights.sum()
    return np.log((counts[None, :] - labels * w + 1.0) / (n - weights[:, None] + labels.shape[1]))


def _prior(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The prior a new request sees: `log_prior` of the weighted label counts."""
    return log_prior((labels * weights[:, None]).sum(axis=0), float(weights.sum()))


def _fit(
    x: np.ndarray, y: np.ndarray, c: float, seed: int, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(C=c, max_iter=5000, random_state=seed)
    clf.fit(scaler.transform(x), y, sample_weight=sample_weight)
    return scaler.mean_, scaler.scale_, clf.coef_[0], float(clf.intercept_[0])


def _model(
    params: tuple[np.ndarray, np.ndarray, np.ndarray, float], names: tuple[str, ...]
) -> LinearReranker:
    mean, scale, coef, intercept = params
    return LinearReranker(names, np.asarray(mean), np.asarray(scale), np.asarray(coef), intercept)


def ranking_scores(scores: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-request reciprocal rank, hit@1 and hit@3 of the gold institutes (only institutes scoring > 0
    rank)."""
    rr, hit1, hit3 = [], [], []
    for s, y in zip(scores, labels, strict=True):
        order = np.lexsort((np.arange(len(s)), -s))
        order = order[s[order] > 0]
        hits = np.flatnonzero(y[order])
        rr.append(1.0 / (hits[0] + 1) if len(hits) else 0.0)
        hit1.append(float(len(hits) > 0 and hits[0] == 0))
        hit3.append(float(len(hits) > 0 and hits[0] < 3))
    return {"mrr": np.array(rr), "hit@1": np.array(hit1), "hit@3": np.array(hit3)}


def _scores(model: LinearReranker, features: np.ndarray) -> np.ndarray:
    flat = features.reshape(-1, features.shape[-1])
    return model.score(flat).reshape(features.shape[:2])


def _fit_weighted(
    data: Collected,
    rows: np.ndarray,
    weights: np.ndarray,
    c: float,
    seed: int,
    names: tuple[str, ...] = FEATURE_NAMES,
) -> LinearReranker:
    """Fit on the requests `rows` with per-request weights (their prior: leave-one-out, weighted),
    reading only the features `names`."""
    cols = [FEATURE_NAMES.index(n) for n in names]
    labels, w = data.labels[rows], weights[rows]
    x = _with_prior(data.features[rows], _loo_prior(labels, w))[..., cols].reshape(-1, len(cols))
    sample = np.repeat(w, labels.shape[1])
    return _model(_fit(x, labels.reshape(-1), c, seed, sample), names)


def fit_reranker(
    data: Collected,
    *,
    c_grid: Sequence[float] = C_GRID,
    folds: int = 5,
    seed: int = 13,
    weighted: np.ndarray | None = None,
    weight_grid: Sequence[float] = (1.0,),
    select: np.ndarray | None = None,
    without: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> tuple[LinearReranker, dict]:
    """Choose C (and the weight of some requests) by GroupKFold CV on MRR, refit on everything.

    Args:
        weighted: requests (bool mask) whose weight is a hyperparameter from `weight_grid` (e.g. the
            few real cases among many synthetic ones); the others weigh 1. None: all weigh 1.
        select: requests (bool mask) whose held-out MRR chooses the hyperparameters (e.g. real-train:
            real cases are what the model is for). None: every request with gold institutes.
        without: names of `FEATURE_GROUPS` the model leaves out (it reads only the other features).
    """
    from sklearn.model_selection import GroupKFold

    n_req, n_inst, _ = data.features.shape
    ranked = data.labels.any(axis=1)  # requests that fit no institute train as all-negative rows
    if ranked.sum() < folds:
        raise ValueError(f"need at least {folds} requests with gold institutes, got {int(ranked.sum())}")
    weighted = np.zeros(n_req, dtype=bool) if weighted is None else np.asarray(weighted, dtype=bool)
    chosen_on = ranked & (np.ones(n_req, dtype=bool) if select is None else np.asarray(select, dtype=bool))
    if not chosen_on.any():
        raise ValueError("no request with gold institutes to choose hyperparameters on")
    weight_grid = tuple(weight_grid) if weighted.any() else (1.0,)
    unknown = [g for g in without if g not in FEATURE_GROUPS]
    if unknown:
        raise ValueError(f"unknown feature group(s) {unknown}; use any of {list(FEATURE_GROUPS)}")
    dropped = {n for g in without for n in FEATURE_GROUPS[g]}
    names = tuple(n for n in FEATURE_NAMES if n not in dropped)
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(np.zeros(n_req), groups=np.arange(n_req)))
    base = ranking_scores(data.features[..., SCORE_COL], data.labels)
    cv: dict[tuple[float, float], dict[str, np.ndarray]] = {}
    total, done = len(c_grid) * len(weight_grid) * folds, 0
    for wgt in weight_grid:
        weights = np.where(weighted, wgt, 1.0)
        for c in c_grid:
            held: dict[str, np.ndarray] = {k: np.zeros(n_req) for k in ("mrr", "hit@1", "hit@3")}
            for train, test in splits:
                model = _fit_weighted(data, train, weights, c, seed, names)
                prior = _prior(data.labels[train], weights[train])
                scores = _scores(model, _with_prior(data.features[test], prior))
                for key, values in ranking_scores(scores, data.labels[test]).items():
                    held[key][test] = values
                done += 1
                if progress:
                    progress(done, total)
            cv[(c, wgt)] = held

    def cv_mrr(key: tuple[float, float]) -> float:
        return float(cv[key]["mrr"][chosen_on].mean())

    best = max(cv, key=lambda k: (round(cv_mrr(k), 6), -k[0], -k[1]))
    best_c, best_w = best
    weights = np.where(weighted, best_w, 1.0)
    model = _fit_weighted(data, np.arange(n_req), weights, best_c, seed, names)
    table = _prior(data.labels, weights)
    model.prior = {inst: float(v) for inst, v in zip(data.institute_ids, table, strict=True)}
    model.prior_default = float(log_prior(np.zeros(n_inst), float(weights.sum()))[0])
    report = {
        "n_requests": n_req,
        "n_ranked": int(ranked.sum()),
        "n_selected_on": int(chosen_on.sum()),
        "folds": folds,
        "seed": seed,
        "C": best_c,
        "weight": best_w,
        "cv_mrr": cv_mrr(best),
        "cv_hit@1": float(cv[best]["hit@1"][chosen_on].mean()),
        "cv_hit@3": float(cv[best]["hit@3"][chosen_on].mean()),
        "base_mrr": float(base["mrr"][chosen_on].mean()),
        "base_hit@1": float(base["hit@1"][chosen_on].mean()),
        "base_hit@3": float(base["hit@3"][chosen_on].mean()),
        "cv_mrr_all": float(cv[best]["mrr"][ranked].mean()),
        "base_mrr_all": float(base["mrr"][ranked].mean()),
        "cv_by_C": {str(c): round(cv_mrr((c, best_w)), 4) for c in c_grid},
        "cv_by_weight": {str(w): round(cv_mrr((best_c, w)), 4) for w in weight_grid},
        "without": list(without),
        "coefficients": {n: round(float(w), 4) for n, w in zip(names, model.coef, strict=True)},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    model.meta = dict(report)
    return model, report

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
from matcher.rerank import FEATURE_NAMES, PRIOR_COL, SCORE_COL, LinearReranker, log_prior

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
        for gold, (a, b) in zip(chunk, prepared.spans, strict=True):
            features.append(ranker.features(hits[a:b]))
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


def _with_prior(features: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Copy of the rows with the prior column set (prior: (n_inst,) or (n_requests, n_inst))."""
    out = features.copy()
    out[..., PRIOR_COL] = prior
    return out


def _loo_prior(labels: np.ndarray) -> np.ndarray:
    """Each request's prior computed without its own labels: (n_requests, n_inst)."""
    counts = labels.sum(axis=0)
    n = len(labels)
    return np.log((counts[None, :] - labels + 1.0) / (n - 1 + labels.shape[1]))


def _fit(
    x: np.ndarray, y: np.ndarray, c: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(scaler.transform(x), y)
    return scaler.mean_, scaler.scale_, clf.coef_[0], float(clf.intercept_[0])


def _model(params: tuple[np.ndarray, np.ndarray, np.ndarray, float]) -> LinearReranker:
    mean, scale, coef, intercept = params
    return LinearReranker(FEATURE_NAMES, np.asarray(mean), np.asarray(scale), np.asarray(coef), intercept)


def ranking_scores(scores: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-request reciprocal rank and hit@1 of the gold institutes (only institutes scoring > 0 rank)."""
    rr, hit1 = [], []
    for s, y in zip(scores, labels, strict=True):
        order = np.lexsort((np.arange(len(s)), -s))
        order = order[s[order] > 0]
        hits = np.flatnonzero(y[order])
        rr.append(1.0 / (hits[0] + 1) if len(hits) else 0.0)
        hit1.append(float(len(hits) > 0 and hits[0] == 0))
    return {"mrr": np.array(rr), "hit@1": np.array(hit1)}


def _scores(model: LinearReranker, features: np.ndarray) -> np.ndarray:
    flat = features.reshape(-1, features.shape[-1])
    return model.score(flat).reshape(features.shape[:2])


def fit_reranker(
    data: Collected,
    *,
    c_grid: Sequence[float] = C_GRID,
    folds: int = 5,
    seed: int = 13,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[LinearReranker, dict]:
    """Choose C by GroupKFold CV on MRR, refit on everything; return the model and a CV report."""
    from sklearn.model_selection import GroupKFold

    n_req, n_inst, n_feat = data.features.shape
    ranked = data.labels.any(axis=1)  # requests that fit no institute train as all-negative rows
    if ranked.sum() < folds:
        raise ValueError(f"need at least {folds} requests with gold institutes, got {int(ranked.sum())}")
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(np.zeros(n_req), groups=np.arange(n_req)))
    base = ranking_scores(data.features[..., SCORE_COL], data.labels)
    cv: dict[float, dict[str, np.ndarray]] = {}
    total, done = len(c_grid) * folds, 0
    for c in c_grid:
        held: dict[str, np.ndarray] = {"mrr": np.zeros(n_req), "hit@1": np.zeros(n_req)}
        for train, test in splits:
            labels = data.labels[train]
            x = _with_prior(data.features[train], _loo_prior(labels)).reshape(-1, n_feat)
            model = _model(_fit(x, labels.reshape(-1), c, seed))
            prior = log_prior(labels.sum(axis=0), len(train))
            scores = _scores(model, _with_prior(data.features[test], prior))
            for key, values in ranking_scores(scores, data.labels[test]).items():
                held[key][test] = values
            done += 1
            if progress:
                progress(done, total)
        cv[c] = held
    best_c = max(c_grid, key=lambda c: (round(float(cv[c]["mrr"][ranked].mean()), 6), -c))

    x = _with_prior(data.features, _loo_prior(data.labels)).reshape(-1, n_feat)
    model = _model(_fit(x, data.labels.reshape(-1), best_c, seed))
    table = log_prior(data.labels.sum(axis=0), n_req)
    model.prior = {inst: float(v) for inst, v in zip(data.institute_ids, table, strict=True)}
    model.prior_default = float(log_prior(np.zeros(n_inst), n_req)[0])
    report = {
        "n_requests": n_req,
        "n_ranked": int(ranked.sum()),
        "folds": folds,
        "seed": seed,
        "C": best_c,
        "cv_mrr": float(cv[best_c]["mrr"][ranked].mean()),
        "cv_hit@1": float(cv[best_c]["hit@1"][ranked].mean()),
        "base_mrr": float(base["mrr"][ranked].mean()),
        "base_hit@1": float(base["hit@1"][ranked].mean()),
        "cv_by_C": {str(c): round(float(cv[c]["mrr"][ranked].mean()), 4) for c in c_grid},
        "coefficients": {n: round(float(w), 4) for n, w in zip(FEATURE_NAMES, model.coef, strict=True)},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    model.meta = dict(report)
    return model, report

"""Fusing ranked hit lists from several retrievers into one score per capability record.

Inputs and outputs are sparse rows: `(scores, ids)` 1-D arrays, in that order as FAISS and every
retriever return them, ids -1 meaning "no result"; so fusion costs the same on a 2,000- or a
1,000,000-record catalog. Fused rows come back unordered (each record once).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Hits = tuple[np.ndarray, np.ndarray]
"""(scores, ids) of one query, best first, as FAISS returns them per row."""


def _collect(contrib_ids: list[np.ndarray], contrib: list[np.ndarray]) -> Hits:
    """Sum each record's contributions: `(scores, ids)`, ids ascending."""
    if not contrib_ids:
        return np.zeros(0, np.float64), np.zeros(0, np.int64)
    ids = np.concatenate(contrib_ids)
    values = np.concatenate(contrib)
    unique, inverse = np.unique(ids, return_inverse=True)
    return np.bincount(inverse, weights=values, minlength=len(unique)), unique


def rrf(hits: Sequence[Hits], weights: Sequence[float] | None = None, k: float = 60.0) -> Hits:
    """Weighted reciprocal-rank fusion: score(d) = sum_r w_r / (k + rank_r(d)), ranks from 1.

    Cormack, Clarke & Buettcher (2009), "Reciprocal rank fusion outperforms Condorcet and
    individual rank learning methods". Returns (fused scores, ids), unordered.
    """
    weights = weights or [1.0] * len(hits)
    ids_parts, val_parts = [], []
    for (_, ids), w in zip(hits, weights, strict=True):
        valid = ids >= 0
        ranks = np.arange(1, len(ids) + 1, dtype=np.float64)[valid]
        ids_parts.append(ids[valid].astype(np.int64))
        val_parts.append(w / (k + ranks))
    return _collect(ids_parts, val_parts)


def rrf_ceiling(weights: Sequence[float], k: float = 60.0) -> float:
    """The largest possible RRF score (rank 1 everywhere): divides scores into [0, 1]."""
    return float(sum(weights)) / (k + 1.0)


def weighted_scores(hits: Sequence[Hits], weights: Sequence[float] | None = None) -> Hits:
    """Weighted sum of per-retriever min-max-normalised scores (a document a retriever missed gets 0).

    The convex combination of Fox & Shaw (1994) / Bruch et al. (2023); returns (scores in [0, sum w], ids).
    """
    weights = weights or [1.0] * len(hits)
    ids_parts, val_parts = [], []
    for (scores, ids), w in zip(hits, weights, strict=True):
        valid = ids >= 0
        s = scores[valid].astype(np.float64)
        if not len(s):
            continue
        lo, hi = s.min(), s.max()
        norm = (s - lo) / (hi - lo) if hi > lo else np.ones_like(s)
        ids_parts.append(ids[valid].astype(np.int64))
        val_parts.append(w * norm)
    return _collect(ids_parts, val_parts)

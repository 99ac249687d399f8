"""Turning capability-record scores into institute scores (pure numpy, one function per rule).

Each takes sparse record scores `(ids, scores)`, the institute index of every record and the
number of institutes, and returns a dense vector of institute scores (0 for an institute with no hit).
"""

from __future__ import annotations

import numpy as np


def agg_max(ids: np.ndarray, scores: np.ndarray, owner: np.ndarray, n_institutes: int) -> np.ndarray:
    """An institute is as good as its best record."""
    out = np.zeros(n_institutes, dtype=np.float64)
    np.maximum.at(out, owner[ids], scores)
    return out


def agg_topk_mean(
    ids: np.ndarray, scores: np.ndarray, owner: np.ndarray, n_institutes: int, k: int = 3
) -> np.ndarray:
    """Mean of an institute's k best record scores (missing records count as 0).

    Rewards institutes with several matching records over one lucky hit.
    """
    if not len(ids):
        return np.zeros(n_institutes, dtype=np.float64)
    inst = owner[ids]
    order = np.lexsort((-scores, inst))
    inst_sorted, s_sorted = inst[order], scores[order]
    starts = np.searchsorted(inst_sorted, inst_sorted, side="left")
    rank = np.arange(len(inst_sorted)) - starts
    keep = rank < k
    return np.bincount(inst_sorted[keep], weights=s_sorted[keep], minlength=n_institutes) / k


def agg_softmax_sum(
    ids: np.ndarray, scores: np.ndarray, owner: np.ndarray, n_institutes: int, temperature: float = 0.1
) -> np.ndarray:
    """A smooth maximum: T * log(sum_i exp(s_i / T)) over an institute's hit records (0 without hits).

    Close to the max for small T; each further good record adds a little.
    """
    out = np.zeros(n_institutes, dtype=np.float64)
    if not len(ids):
        return out
    inst = owner[ids]
    peak = agg_max(ids, scores, owner, n_institutes)
    sums = np.bincount(inst, weights=np.exp((scores - peak[inst]) / temperature), minlength=n_institutes)
    has = sums > 0
    out[has] = peak[has] + temperature * np.log(sums[has])
    return out


def aggregate(
    method: str,
    ids: np.ndarray,
    scores: np.ndarray,
    owner: np.ndarray,
    n_institutes: int,
    *,
    k: int = 3,
    temperature: float = 0.1,
) -> np.ndarray:
    if method == "max":
        return agg_max(ids, scores, owner, n_institutes)
    if method == "topk_mean":
        return agg_topk_mean(ids, scores, owner, n_institutes, k)
    if method == "softmax_sum":
        return agg_softmax_sum(ids, scores, owner, n_institutes, temperature)
    raise ValueError(f"unknown aggregation {method!r}")

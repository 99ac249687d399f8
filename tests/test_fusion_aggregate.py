"""Fusion and aggregation against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.aggregate import agg_max, agg_softmax_sum, agg_topk_mean, aggregate
from matcher.fusion import rrf, rrf_ceiling, weighted_scores


def as_dict(pair):
    scores, ids = pair  # (scores, ids), like FAISS and every retriever
    return dict(zip(ids.tolist(), scores.tolist(), strict=True))


def test_rrf_hand_computed():
    a = (np.array([0.9, 0.8, 0.0]), np.array([3, 1, -1]))
    b = (np.array([5.0, 4.0, 3.0]), np.array([1, 2, 3]))
    got = as_dict(rrf([a, b], k=60))
    assert got[1] == pytest.approx(1 / (60 + 2) + 1 / (60 + 1))
    assert got[3] == pytest.approx(1 / (60 + 1) + 1 / (60 + 3))
    assert got[2] == pytest.approx(1 / (60 + 2))
    assert set(got) == {1, 2, 3}


def test_rrf_weights_and_ceiling():
    a = (np.array([1.0]), np.array([7]))
    got = as_dict(rrf([a, a], weights=[2.0, 0.5], k=10))
    assert got[7] == pytest.approx(2.5 / 11)
    assert got[7] / rrf_ceiling([2.0, 0.5], k=10) == pytest.approx(1.0)


def test_weighted_scores_min_max():
    a = (np.array([0.9, 0.7, 0.5]), np.array([0, 1, 2]))
    b = (np.array([10.0, 0.0]), np.array([2, 0]))
    got = as_dict(weighted_scores([a, b], [1.0, 2.0]))
    assert got[0] == pytest.approx(1.0 + 0.0)
    assert got[1] == pytest.approx(0.5)
    assert got[2] == pytest.approx(0.0 + 2.0)


IDS = np.array([0, 1, 2, 3, 4])
SCORES = np.array([0.9, 0.5, 0.8, 0.1, 0.6])
OWNER = np.array([0, 0, 1, 1, 0])


def test_max():
    assert agg_max(IDS, SCORES, OWNER, 3).tolist() == pytest.approx([0.9, 0.8, 0.0])


def test_topk_mean_counts_missing_as_zero():
    assert agg_topk_mean(IDS, SCORES, OWNER, 3, k=2).tolist() == pytest.approx(
        [(0.9 + 0.6) / 2, (0.8 + 0.1) / 2, 0]
    )
    assert agg_topk_mean(IDS, SCORES, OWNER, 3, k=4).tolist() == pytest.approx([2.0 / 4, 0.9 / 4, 0])


def test_softmax_sum_is_logsumexp():
    t = 0.1
    expected0 = t * np.log(np.exp(9) + np.exp(5) + np.exp(6))
    expected1 = t * np.log(np.exp(8) + np.exp(1))
    got = agg_softmax_sum(IDS, SCORES, OWNER, 3, temperature=t)
    assert got.tolist() == pytest.approx([expected0, expected1, 0.0])


def test_aggregate_dispatch_and_empty():
    empty = np.zeros(0, np.int64)
    for method in ("max", "topk_mean", "softmax_sum"):
        assert aggregate(method, empty, empty.astype(float), OWNER, 2).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        aggregate("median", IDS, SCORES, OWNER, 3)

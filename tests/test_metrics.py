"""Metric functions against hand-computed examples, and a cross-check with ranx."""

from __future__ import annotations

import math

import numpy as np
import pytest

from matcher.evaluation.metrics import (
    abstention,
    full_cover_at,
    hit_at,
    jaccard_first,
    ndcg_at,
    recall_at,
    reciprocal_rank,
    request_metrics,
)
from matcher.evaluation.stats import bootstrap_ci, paired_test


def test_ranking_metrics_hand_computed():
    ranked = ["a", "b", "c", "d", "e"]
    assert hit_at(ranked, ["c"], 1) == 0 and hit_at(ranked, ["c"], 3) == 1
    assert recall_at(ranked, ["b", "e"], 3) == 0.5
    assert reciprocal_rank(ranked, ["c", "e"]) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, ["z"]) == 0.0
    expected = (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3))
    assert ndcg_at(ranked, ["b", "e"], 5) == pytest.approx(expected)


def test_joint_recommendation_contributes_members_in_order():
    recs = [["a", "b"], ["a"], ["c"]]
    ranked = ["a", "b", "c"]  # what MatchResult.ranked_institutes gives for these recommendations
    m = request_metrics(ranked, recs, ["a", "b"])
    assert m["full_cover@1"] == 1.0 and m["jaccard@1"] == 1.0 and m["recall@3"] == 1.0
    assert full_cover_at([["a"], ["b"], ["a", "c"]], ["a", "b"], 3) == 0.0
    assert jaccard_first([["a", "c"]], ["a", "b"]) == pytest.approx(1 / 3)


def test_team_first_only_on_single_institute_requests():
    assert request_metrics(["a", "b"], [["a", "b"], ["a"]], ["a"])["team_first"] == 1.0
    assert request_metrics(["a", "b"], [["a"], ["a", "b"]], ["a"])["team_first"] == 0.0
    assert request_metrics([], [], ["a"])["team_first"] == 0.0
    assert "team_first" not in request_metrics(["a", "b"], [["a", "b"]], ["a", "b"])


def test_ties_resolved_by_list_order_and_duplicates_ignored():
    # Two institutes with equal scores: the ranked list's order decides, and a repeated id counts once.
    assert reciprocal_rank(["x", "y"], ["y"]) == 0.5
    assert recall_at(["a", "a", "b"], ["a", "b"], 2) == 0.5


def test_empty_gold_has_no_ranking_metrics():
    assert request_metrics(["a"], [["a"]], []) == {}
    assert "full_cover@3" not in request_metrics(["a"], [["a"]], ["a"])


def test_abstention_precision_recall():
    got = abstention([True, True, False, False], [True, False, True, False])
    assert got == {"abstain_precision": 0.5, "abstain_recall": 0.5, "abstain_rate": 0.5}


def test_bootstrap_and_paired_test_are_seeded_and_sane():
    values = np.array([0, 1] * 50, dtype=float)
    low, high = bootstrap_ci(values, seed=1)
    assert low < 0.5 < high and bootstrap_ci(values, seed=1) == (low, high)
    a = np.zeros(60)
    b = np.ones(60)
    result = paired_test(a, b, n_resamples=2000)
    assert result["diff"] == 1.0 and result["p_value"] < 0.01
    assert paired_test(a, a)["p_value"] == 1.0


@pytest.mark.slow
def test_cross_check_with_ranx(tmp_path):
    ranx = pytest.importorskip("ranx")
    from matcher.evaluation.trec import write_qrels, write_run

    gold = [("q1", ["b"]), ("q2", ["a", "c"]), ("q3", ["d"])]
    runs = [("q1", ["a", "b", "c"]), ("q2", ["c", "d", "a"]), ("q3", ["a", "b", "c"])]
    write_qrels(tmp_path / "qrels.txt", gold)
    write_run(tmp_path / "run.txt", runs)
    qrels = ranx.Qrels.from_file(str(tmp_path / "qrels.txt"), kind="trec")
    run = ranx.Run.from_file(str(tmp_path / "run.txt"), kind="trec")
    ours = {
        "mrr": np.mean([reciprocal_rank(r, g) for (_, g), (_, r) in zip(gold, runs, strict=True)]),
        "ndcg@5": np.mean([ndcg_at(r, g, 5) for (_, g), (_, r) in zip(gold, runs, strict=True)]),
        "recall@3": np.mean([recall_at(r, g, 3) for (_, g), (_, r) in zip(gold, runs, strict=True)]),
    }
    theirs = ranx.evaluate(qrels, run, ["mrr", "ndcg@5", "recall@3"])
    for name, value in ours.items():
        assert theirs[name] == pytest.approx(value), name

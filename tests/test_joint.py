"""Joint planning on hand-made coverage matrices."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.joint import coverage, coverage_matrix, greedy_team, objective, plan_teams

# Two needs: institute 0 is best at need 0, institute 1 at need 1, institute 2 is mediocre at both.
C2 = np.array([[1.0, 0.2, 0.6], [0.1, 1.0, 0.6]])
W2 = np.array([0.5, 0.5])


def test_objective_hand_computed():
    assert coverage(C2, W2, [0]) == pytest.approx(0.55)
    assert coverage(C2, W2, [0, 1]) == pytest.approx(1.0)
    assert objective(C2, W2, [0, 1], penalty=0.1) == pytest.approx(0.9)


def test_pair_found_with_known_optimum():
    [team] = plan_teams(C2, W2, penalty=0.05, margin=0.1, limit=1)
    assert set(team.members) == {0, 1}
    assert team.value == pytest.approx(0.95)
    assert team.gain == pytest.approx(0.95 - 0.6)  # best single is institute 2 (0.6)


def test_margin_respected():
    assert plan_teams(C2, W2, penalty=0.05, margin=0.4) == []


def test_no_padding_of_single_field_request():
    # Institute 0 is best at every need: nobody should be added to it.
    C = np.array([[1.0, 0.9, 0.3], [1.0, 0.5, 0.8], [1.0, 0.7, 0.2]])
    assert plan_teams(C, np.full(3, 1 / 3), penalty=0.02, margin=0.05) == []


def test_passenger_rejected_in_triples():
    # Three needs covered by 0, 1, 2; institute 3 adds nothing once 0-2 are in.
    C = np.array([[1, 0, 0, 0.9], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=float)
    w = np.full(3, 1 / 3)
    teams = plan_teams(C, w, penalty=0.01, margin=0.05, max_size=3, limit=10)
    assert set(teams[0].members) == {0, 1, 2}
    assert teams[0].value == pytest.approx(1.0 - 2 * 0.01)
    assert all(not {0, 3} <= set(t.members) for t in teams)


def test_greedy_matches_exact_on_simple_case():
    assert set(greedy_team(C2, W2, penalty=0.05)) == {0, 1}
    assert len(greedy_team(C2, W2, penalty=0.9)) == 1


def test_coverage_matrix_normalises_rows():
    got = coverage_matrix(np.array([[2.0, 1.0, 1.5], [0.0, 0.0, 0.0]]))
    assert got.tolist() == [[1.0, 0.0, 0.5], [0.0, 0.0, 0.0]]


def test_team_first_only_when_each_member_leads_a_distinct_need():
    from matcher.joint import covers_distinct_needs

    # rows: need 1, need 2, whole request; columns: A, B
    owns = np.array([[1.0, 0.2], [0.1, 1.0], [1.0, 0.8]])
    assert covers_distinct_needs(owns, [0, 1], 2, gap=0.3)
    # B leads nowhere by the gap (a single-field request with a second strong institute)
    shadow = np.array([[1.0, 0.9], [0.8, 0.9], [1.0, 0.95]])
    assert not covers_distinct_needs(shadow, [0, 1], 2, gap=0.3)
    assert covers_distinct_needs(shadow, [0, 1], 2, gap=0.05)
    # the whole-request row never counts as a need of its own
    assert not covers_distinct_needs(np.array([[1.0, 0.0], [0.0, 1.0]]), [0, 1], 1, gap=0.1)
    assert not covers_distinct_needs(owns, [0], 2, gap=0.1)


def test_rank_one_rule_moves_teams_behind_the_best_single_but_keeps_them_offered(fast_matcher):
    from matcher.datasets import load_labeled
    from tests.conftest import FIXTURE_REQUESTS

    golds = load_labeled(FIXTURE_REQUESTS, fast_matcher.catalog)
    requests = [g.request for g in golds]
    free = fast_matcher.with_config(fast_matcher.config.replace(joint_first_rule=False, joint_margin=0.0))
    strict = free.with_config(free.config.replace(joint_first_rule=True, joint_first_gap=1.0))
    before, after = free.match_batch(requests), strict.match_batch(requests)
    teams_first = [r for r in before if r.recommendations and len(r.recommendations[0].institutes) > 1]
    assert teams_first, "the fixture should have requests where a team comes first without the rule"
    for b, a in zip(before, after, strict=True):
        assert len(a.recommendations[0].institutes) == 1 or not b.recommendations
        if b.recommendations and len(b.recommendations[0].institutes) > 1:
            offered = {rec.institutes for rec in a.recommendations[:3]}
            assert b.recommendations[0].institutes in offered  # right after the best single


def test_no_team_member_is_there_for_the_company_introduction_alone(fast_matcher):
    from matcher.korean import is_company_intro

    text = (
        "반도체 패키징 장비를 만드는 회사입니다. 자동차 브레이크 브라켓 알루미늄 다이캐스팅 제품에서 기공 "
        "불량이 많이 나옵니다. 차량용 ECU에서 라디오 노이즈 문제로 EMC 시험에 떨어졌습니다."
    )
    loose = fast_matcher.config.replace(joint_first_rule=False, joint_margin=0.0, joint_penalty=0.0)

    def intro_only_members(skip: bool) -> list[str]:
        result = fast_matcher.with_config(loose.replace(joint_skip_intro=skip)).match(text)
        return [
            c.institute
            for rec in result.recommendations
            for c in rec.covers
            if c.needs and all(is_company_intro(n) for n in c.needs)
        ]

    assert intro_only_members(skip=False), "the fixture pads teams with the introduction without the rule"
    assert intro_only_members(skip=True) == []

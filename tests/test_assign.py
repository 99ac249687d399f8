"""Capacity-aware assignment: exact (equals brute force), within capacity, joint members each consume."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from matcher.assign import Case, Option, assign, load_capacity, write_assignment
from matcher.problems import InputError


def case(cid: str, *options: tuple[tuple[str, ...] | str, float], abstained: bool = False) -> Case:
    opts = tuple(
        Option(rank, (members,) if isinstance(members, str) else tuple(members), score)
        for rank, (members, score) in enumerate(options, start=1)
    )
    return Case(cid, opts, abstained)


def brute_force(cases: list[Case], capacity: dict[str, int]) -> float:
    """Best total over every combination of (no option or one option) per case."""
    best = 0.0
    for pick in itertools.product(*[(None, *c.options) for c in cases]):
        load: dict[str, int] = {}
        for option in pick:
            for inst in option.institutes if option else ():
                load[inst] = load.get(inst, 0) + 1
        if all(n <= capacity.get(i, 0) for i, n in load.items()):
            best = max(best, sum(o.score for o in pick if o))
    return best


def check_feasible(result, cases: list[Case], capacity: dict[str, int]) -> None:
    assert [c.id for c in result.choices] == [c.id for c in cases]
    load: dict[str, int] = {}
    for choice, c in zip(result.choices, cases, strict=True):
        if choice.option is not None:
            assert choice.option in c.options
            for inst in choice.option.institutes:
                load[inst] = load.get(inst, 0) + 1
    assert all(n <= capacity.get(i, 0) for i, n in load.items())
    assert load == {i: n for i, n in result.load.items() if n}


def test_beats_greedy_where_capacity_binds():
    # Greedy gives A its best (X, 0.9) and leaves B nothing: 0.9. The optimum is A→Y, B→X: 1.65.
    cases = [case("A", ("X", 0.9), ("Y", 0.8)), case("B", ("X", 0.85))]
    result = assign(cases, {"X": 1, "Y": 1})
    assert result.total == pytest.approx(1.65)
    assert [c.option.institutes for c in result.choices] == [("Y",), ("X",)]
    assert result.top1_total == pytest.approx(1.75)
    assert result.cost_of_capacity == pytest.approx(0.10)


def test_joint_recommendation_consumes_each_member():
    cases = [case("A", (("X", "Y"), 1.0), ("X", 0.6)), case("B", ("Y", 0.7))]
    both = assign(cases, {"X": 1, "Y": 1})  # joint A (1.0) blocks B: 1.0 < A→X + B→Y = 1.3
    assert both.total == pytest.approx(1.3)
    assert both.load == {"X": 1, "Y": 1}
    roomy = assign(cases, {"X": 1, "Y": 2})
    assert roomy.total == pytest.approx(1.7)
    assert roomy.choices[0].option.institutes == ("X", "Y")


def test_unassigned_reasons_and_missing_capacity_is_zero():
    cases = [
        case("A", ("X", 0.9)),
        case("B", ("X", 0.8)),
        case("C", ("Z", 0.9)),  # Z has no capacity line
        case("D", ("X", 0.5), abstained=True),
        Case("E", ()),
    ]
    result = assign(cases, {"X": 1})
    reasons = {c.id: c.reason for c in result.unassigned}
    assert reasons == {
        "B": "capacity exhausted",
        "C": "capacity exhausted",
        "D": "abstained",
        "E": "no recommendation",
    }
    assert result.choices[0].option.institutes == ("X",)
    summary = result.summary()
    assert summary["assigned"] == 1 and summary["load"] == {"X": {"assigned": 1, "capacity": 1}}


@pytest.mark.parametrize("seed", range(12))
def test_equals_brute_force_optimum(seed):
    rng = random.Random(seed)
    institutes = ["a", "b", "c", "d"]
    cases = []
    for k in range(rng.randint(3, 6)):
        options = []
        for _ in range(rng.randint(1, 3)):
            members = tuple(sorted(rng.sample(institutes, 2 if rng.random() < 0.3 else 1)))
            options.append((members, round(rng.uniform(0.1, 1.0), 3)))
        options.sort(key=lambda o: -o[1])
        cases.append(case(f"c{k}", *options))
    capacity = {i: rng.randint(0, 2) for i in institutes}
    result = assign(cases, capacity)
    check_feasible(result, cases, capacity)
    assert result.total == pytest.approx(brute_force(cases, capacity), abs=1e-9)


def test_no_capacity_at_all():
    result = assign([case("A", ("X", 0.9))], {})
    assert result.total == 0 and result.unassigned[0].reason == "capacity exhausted"
    assert assign([], {"X": 1}).choices == ()


def test_load_capacity_resolves_names_and_reports_every_problem(fixture_catalog, tmp_path):
    path = tmp_path / "cap.csv"
    path.write_text("institute,capacity\nKIMS,3\n한국자동차연구원,1\n\nketi,0\n", encoding="utf-8")
    assert load_capacity(path, fixture_catalog.resolve) == {"kims": 3, "katech": 1, "keti": 0}

    path.write_text(
        "institute,capacity\nkims,2\n없는기관,1\nketi,-1\nktl,many\n재료연구원,1\n", encoding="utf-8"
    )
    with pytest.raises(InputError) as exc:
        load_capacity(path, fixture_catalog.resolve)
    messages = {p.line: p.message for p in exc.value.problems}
    assert set(messages) == {3, 4, 5, 6}
    assert "unknown institute" in messages[3] and "twice" in messages[6]

    path.write_text("name,slots\nkims,1\n", encoding="utf-8")
    with pytest.raises(InputError, match="institute,capacity"):
        load_capacity(path, fixture_catalog.resolve)


def test_write_assignment_lines(tmp_path):
    result = assign([case("A", ("X", 0.9), ("Y", 0.5)), case("B", ("X", 0.8))], {"X": 1})
    path = tmp_path / "out.jsonl.assignment.jsonl"
    write_assignment(path, result)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"id": "A", "institutes": ["X"], "score": 0.9, "rank": 1},
        {"id": "B", "institutes": [], "score": None, "rank": None, "reason": "capacity exhausted"},
    ]

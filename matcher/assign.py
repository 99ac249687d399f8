"""Capacity-aware assignment: give each case ONE of its recommendations, best total score within capacity.

Model (solved exactly as a 0-1 integer program with HiGHS through `scipy.optimize.milp`):

    maximise    Σ score[c, r] · x[c, r]
    subject to  Σ_r x[c, r] ≤ 1                        for every case c        (one choice at most)
                Σ_{(c, r) : i ∈ members(r)} x[c, r] ≤ capacity[i]   for every institute i
                x[c, r] ∈ {0, 1}

A joint recommendation consumes one unit at each member. An institute with no capacity line has
capacity 0. Abstained cases and cases without recommendations are never assigned. A greedy pass (best
score first) is not optimal once capacities bind; the integer program is, and with single-institute
recommendations only its relaxation is already integral (a transportation problem), so it stays fast.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matcher.atomic import atomic_write
from matcher.datasets import iter_jsonl
from matcher.problems import InputError, Problem


@dataclass(frozen=True)
class Option:
    """One recommendation a case may be assigned to."""

    rank: int
    institutes: tuple[str, ...]
    score: float


@dataclass(frozen=True)
class Case:
    id: str
    options: tuple[Option, ...]
    abstained: bool = False


@dataclass(frozen=True)
class Choice:
    """What one case got: an option, or None with the reason."""

    id: str
    option: Option | None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        if self.option is None:
            return {"id": self.id, "institutes": [], "score": None, "rank": None, "reason": self.reason}
        o = self.option
        return {"id": self.id, "institutes": list(o.institutes), "score": o.score, "rank": o.rank}


@dataclass(frozen=True)
class Assignment:
    choices: tuple[Choice, ...]
    """One per case, in case order."""
    total: float
    top1_total: float
    """Total score if every case got its first recommendation, capacity ignored."""
    load: dict[str, int]
    capacity: dict[str, int]

    @property
    def cost_of_capacity(self) -> float:
        return self.top1_total - self.total

    @property
    def unassigned(self) -> list[Choice]:
        return [c for c in self.choices if c.option is None]

    def summary(self) -> dict[str, Any]:
        assigned = sum(c.option is not None for c in self.choices)
        return {
            "cases": len(self.choices),
            "assigned": assigned,
            "assigned_first_choice": sum(c.option is not None and c.option.rank == 1 for c in self.choices),
            "unassigned": [{"id": c.id, "reason": c.reason} for c in self.unassigned],
            "total_score": round(self.total, 4),
            "top1_total_score": round(self.top1_total, 4),
            "cost_of_capacity": round(self.cost_of_capacity, 4),
            "load": {i: {"assigned": self.load.get(i, 0), "capacity": c} for i, c in self.capacity.items()},
        }


def assign(cases: Iterable[Case], capacity: Mapping[str, int]) -> Assignment:
    """The assignment of cases to recommendations with the largest total score within capacity."""
    cases = list(cases)
    capacity = {i: int(c) for i, c in capacity.items()}
    variables: list[tuple[int, Option]] = [
        (ci, o)
        for ci, case in enumerate(cases)
        if not case.abstained
        for o in case.options
        if all(capacity.get(i, 0) > 0 for i in o.institutes)
    ]
    chosen: dict[int, Option] = {}
    if variables:
        chosen = _solve(variables, len(cases), capacity)
    load: dict[str, int] = {}
    choices = []
    for ci, case in enumerate(cases):
        option = chosen.get(ci)
        if option is not None:
            for inst in option.institutes:
                load[inst] = load.get(inst, 0) + 1
            choices.append(Choice(case.id, option))
        elif case.abstained:
            choices.append(Choice(case.id, None, "abstained"))
        elif not case.options:
            choices.append(Choice(case.id, None, "no recommendation"))
        else:
            choices.append(Choice(case.id, None, "capacity exhausted"))
    top1 = sum(c.options[0].score for c in cases if c.options and not c.abstained)
    total = sum(o.score for o in chosen.values())
    return Assignment(tuple(choices), total, top1, load, capacity)


def _solve(variables: list[tuple[int, Option]], n_cases: int, capacity: dict[str, int]) -> dict[int, Option]:
    # scipy.optimize is imported here, not at module level: it cost ~1-4 s of every command's start-up.
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_array

    institutes = sorted({i for _, o in variables for i in o.institutes})
    inst_row = {inst: n_cases + k for k, inst in enumerate(institutes)}
    rows, cols = [], []
    for v, (ci, option) in enumerate(variables):
        rows.append(ci)
        cols.append(v)
        for inst in option.institutes:
            rows.append(inst_row[inst])
            cols.append(v)
    n = len(variables)
    A = csr_array((np.ones(len(rows)), (rows, cols)), shape=(n_cases + len(institutes), n))
    upper = np.array([1.0] * n_cases + [float(capacity[i]) for i in institutes])
    scores = np.array([o.score for _, o in variables])
    result = milp(
        -scores,
        constraints=LinearConstraint(A, -np.inf, upper),
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
    )
    if result.x is None:  # pragma: no cover - the problem is always feasible (x = 0)
        raise RuntimeError(f"assignment solver failed: {result.message}")
    return {variables[v][0]: variables[v][1] for v in np.flatnonzero(result.x > 0.5)}


# ---------------------------------------------------------------------------------------------- files


def load_capacity(path: str | Path, resolve: Callable[[str], str | None]) -> dict[str, int]:
    """Read `institute,capacity` rows; an institute may be any name the catalog resolves.

    Raises:
        InputError: every unknown institute, bad or negative capacity, or repeated institute, with its line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError([Problem(str(path), "capacity file not found")])
    out: dict[str, int] = {}
    first: dict[str, int] = {}
    problems: list[Problem] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        if "institute" not in fields or "capacity" not in fields:
            raise InputError([Problem(str(path), "expected columns 'institute,capacity'", line=1)])
        reader.fieldnames = fields
        for row in reader:
            line = reader.line_num
            label = (row.get("institute") or "").strip()
            if not label:
                continue
            inst = resolve(label)
            if inst is None:
                problems.append(
                    Problem(str(path), f"unknown institute {label!r}", line=line, field="institute")
                )
                continue
            try:
                value = int((row.get("capacity") or "").strip())
                if value < 0:
                    raise ValueError
            except ValueError:
                problems.append(
                    Problem(
                        str(path),
                        f"capacity must be a whole number ≥ 0, got {row.get('capacity')!r}",
                        line=line,
                        field="capacity",
                    )
                )
                continue
            if inst in first:
                problems.append(
                    Problem(str(path), f"{inst} is listed twice (first on line {first[inst]})", line=line)
                )
                continue
            first[inst] = line
            out[inst] = value
    if problems:
        raise InputError(problems)
    return out


def read_cases(path: str | Path, fmt: str, top: int) -> Iterator[Case]:
    """Cases (id, recommendations) from a finished `matcher batch` output file, JSONL or CSV."""
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                options = []
                for k in range(1, top + 1):
                    members = row.get(f"rank{k}_institutes") or ""
                    if members:
                        options.append(Option(k, tuple(members.split("+")), float(row[f"rank{k}_score"])))
                yield Case(row["id"], tuple(options), row["abstained"] == "true")
        return
    for _, line in iter_jsonl(path):
        data = json.loads(line)
        options = tuple(
            Option(r["rank"], tuple(r["institutes"]), float(r["score"])) for r in data["recommendations"]
        )
        yield Case(data["id"], options, bool(data["abstained"]))


def write_assignment(path: str | Path, assignment: Assignment) -> None:
    """One line per case; written to a temporary file and renamed, so it is never half there."""
    with atomic_write(path, fsync=True) as fh:
        for choice in assignment.choices:
            fh.write(json.dumps(choice.to_dict(), ensure_ascii=False) + "\n")

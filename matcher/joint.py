"""Joint (융복합) planning: sets of institutes that together cover a multi-field request.

A request's needs (rows) and candidate institutes (columns) form a coverage matrix `C` in [0, 1]
(1: the best institute for that need). A set S is worth the facility-location objective

    f(S) = sum_j w_j * max_{i in S} C[j, i]      minus  penalty * (|S| - 1)

and is proposed only when it beats its best member alone by `margin`, is no worse than the best
single institute, and every member is needed
(removing one loses more than the penalty), so a single-field request is never padded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from matcher.config import MatcherConfig
from matcher.result import Cover


@dataclass(frozen=True)
class Team:
    members: tuple[int, ...]
    """Column indices in the coverage matrix, best single member first."""
    value: float
    """f(S) with the size penalty applied."""
    gain: float
    """value minus the best member's value alone."""


def coverage(C: np.ndarray, w: np.ndarray, members: tuple[int, ...] | list[int]) -> float:
    """Weighted coverage of the needs by the set (no penalty)."""
    return float(w @ C[:, list(members)].max(axis=1))


def objective(C: np.ndarray, w: np.ndarray, members: tuple[int, ...] | list[int], penalty: float) -> float:
    return coverage(C, w, members) - penalty * (len(members) - 1)


def _every_member_needed(C: np.ndarray, w: np.ndarray, members: tuple[int, ...], penalty: float) -> bool:
    full = coverage(C, w, members)
    return all(full - coverage(C, w, [m for m in members if m != i]) > penalty for i in members)


def _team(C: np.ndarray, w: np.ndarray, members: tuple[int, ...], penalty: float, single: np.ndarray) -> Team:
    ordered = tuple(sorted(members, key=lambda i: -single[i]))
    value = objective(C, w, ordered, penalty)
    return Team(ordered, value, value - float(single[list(members)].max()))


def greedy_team(C: np.ndarray, w: np.ndarray, *, penalty: float, max_size: int = 3) -> tuple[int, ...]:
    """Grow a set from the best single by the largest marginal gain while it exceeds the penalty."""
    single = np.array([coverage(C, w, [i]) for i in range(C.shape[1])])
    members = [int(np.argmax(single))]
    while len(members) < max_size:
        base = coverage(C, w, members)
        gains = [(coverage(C, w, [*members, i]) - base, i) for i in range(C.shape[1]) if i not in members]
        if not gains:
            break
        gain, best = max(gains)
        if gain <= penalty:
            break
        members.append(best)
    return tuple(members)


def plan_teams(
    C: np.ndarray, w: np.ndarray, *, penalty: float, margin: float, max_size: int = 3, limit: int = 3
) -> list[Team]:
    """Teams worth proposing, best first: exact search over pairs (and triples when there are 3+
    needs) plus the greedy team; each must beat its best member by `margin` with no passenger."""
    n_needs, n_cand = C.shape
    if n_cand < 2 or n_needs < 2:
        return []
    w = np.asarray(w, dtype=np.float64)
    single = np.array([coverage(C, w, [i]) for i in range(n_cand)])
    sizes = [2] + ([3] if max_size >= 3 and n_needs >= 3 else [])
    candidates = {tuple(sorted(s)) for size in sizes for s in combinations(range(n_cand), size)}
    greedy = greedy_team(C, w, penalty=penalty, max_size=max_size)
    if len(greedy) >= 2:
        candidates.add(tuple(sorted(greedy)))
    teams = []
    for members in candidates:
        team = _team(C, w, members, penalty, single)
        # Better than its best member by the margin, not worse than the best institute alone, no passenger.
        if (
            team.gain >= margin
            and team.value >= single.max()
            and _every_member_needed(C, w, members, penalty)
        ):
            teams.append(team)
    teams.sort(key=lambda t: (-t.value, len(t.members), t.members))
    return teams[:limit]


def coverage_matrix(need_scores: np.ndarray) -> np.ndarray:
    """Min-max normalise each need's scores over the candidates: best 1, worst 0.

    Fused scores are compressed (reciprocal ranks of a few hundred hits differ little), so a plain
    ratio to the best would make every candidate look like it covers every need.
    """
    lo = need_scores.min(axis=1, keepdims=True)
    span = need_scores.max(axis=1, keepdims=True) - lo
    return np.divide(need_scores - lo, span, out=np.zeros_like(need_scores, dtype=np.float64), where=span > 0)


Proposal = tuple[float, tuple[int, ...], tuple[Cover, ...]]
"""A recommendation before it is written out: value, member institute positions, what each covers."""


class JointPlanner:
    """Proposes joint teams for one request from its institute scores (DESIGN's JointPlanner).

    The matcher calls `propose`; a variant overrides `coverage` (the reference a need's scores are
    normalised against) or filters `propose`'s teams, and is handed to `Matcher(..., planner=...)`.
    """

    def coverage(self, rows: np.ndarray, candidates: Sequence[int]) -> np.ndarray:
        """Coverage matrix of the candidates: `rows` holds every institute's scores per need, then
        for the whole request."""
        return coverage_matrix(rows[:, list(candidates)])

    def propose(
        self,
        rows: np.ndarray,
        labels: Sequence[str],
        candidates: Sequence[int],
        score: np.ndarray,
        institute_ids: Sequence[str],
        config: MatcherConfig,
    ) -> list[Proposal]:
        """Teams over the candidates (institute positions, best first), valued on the score scale.

        Args:
            rows: institute scores `(n_needs + 1, n_institutes)`: each need, then the whole request.
            labels: the text of each row; score: the request's institute scores.
        """
        C = self.coverage(rows, candidates)
        n_needs = len(rows) - 1
        w = np.full(len(rows), 1.0 / len(rows))
        best_single = max(float(w @ C[:, i]) for i in range(C.shape[1]))
        out = []
        for team in plan_teams(
            C, w, penalty=config.joint_penalty, margin=config.joint_margin, max_size=config.joint_max_size
        ):
            members = tuple(candidates[m] for m in team.members)
            covers = []
            for m in team.members:
                best_rows = [
                    j for j in range(n_needs) if C[j, m] >= C[j, list(team.members)].max() and C[j, m] > 0
                ]
                covers.append(
                    Cover(
                        institute_ids[candidates[m]],
                        tuple(labels[j] for j in best_rows),
                        float(w[:n_needs] @ C[:n_needs, m]),
                    )
                )
            # Teams rank by their coverage value, on the single-institute score scale: a team worth
            # `best single value + x` scores x above the top single recommendation (relatively).
            value = float(score[candidates[0]]) * (1.0 + team.value - best_single)
            out.append((value, members, tuple(covers)))
        return out

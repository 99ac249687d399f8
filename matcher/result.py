"""What a match returns: ranked recommendations (single institutes and joint teams) with evidence.

One frozen shape consumed alike by the CLI table, `--json`, the batch writer and the evaluator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal


@dataclass(frozen=True)
class Evidence:
    """A capability record that matched a part (need) of the request."""

    institute: str
    capability_id: str
    kind: str
    title: str
    text: str
    score: float
    need: str
    """The request text (whole request or one of its needs) this record matched."""


@dataclass(frozen=True)
class Cover:
    """What one member of a recommendation covers."""

    institute: str
    needs: tuple[str, ...]
    coverage: float


@dataclass(frozen=True)
class Recommendation:
    rank: int
    institutes: tuple[str, ...]
    names: tuple[str, ...]
    score: float
    kind: Literal["single", "joint"]
    evidence: tuple[Evidence, ...] = ()
    covers: tuple[Cover, ...] = ()


@dataclass(frozen=True)
class MatchResult:
    request_id: str
    request: str
    needs: tuple[str, ...]
    abstained: bool
    confidence: float
    recommendations: tuple[Recommendation, ...]
    latency_ms: float = 0.0

    def ranked_institutes(self) -> list[str]:
        """Institutes in recommendation order, each once (a joint recommendation adds its members)."""
        seen: list[str] = []
        for rec in self.recommendations:
            for inst in rec.institutes:
                if inst not in seen:
                    seen.append(inst)
        return seen

    @classmethod
    def from_dict(cls, data: dict) -> MatchResult:
        """The inverse of `to_dict` (e.g. an answer from the desk's API shown by the CLI table)."""
        recs = tuple(
            Recommendation(
                rank=r["rank"],
                institutes=tuple(r["institutes"]),
                names=tuple(r["names"]),
                score=r["score"],
                kind=r["kind"],
                evidence=tuple(Evidence(**e) for e in r["evidence"]),
                covers=tuple(Cover(c["institute"], tuple(c["needs"]), c["coverage"]) for c in r["covers"]),
            )
            for r in data["recommendations"]
        )
        return cls(
            request_id=data["id"],
            request=data["request"],
            needs=tuple(data["needs"]),
            abstained=data["abstained"],
            confidence=data["confidence"],
            recommendations=recs,
            latency_ms=data.get("latency_ms", 0.0),
        )

    def to_dict(self) -> dict:
        """The stable `--json` shape (docs/json-output.md)."""
        return {
            "id": self.request_id,
            "request": self.request,
            "needs": list(self.needs),
            "abstained": self.abstained,
            "confidence": round(self.confidence, 4),
            "recommendations": [
                {
                    "rank": r.rank,
                    "institutes": list(r.institutes),
                    "names": list(r.names),
                    "score": round(r.score, 4),
                    "kind": r.kind,
                    "covers": [
                        {"institute": c.institute, "needs": list(c.needs), "coverage": round(c.coverage, 4)}
                        for c in r.covers
                    ],
                    "evidence": [{**asdict(e), "score": round(e.score, 4)} for e in r.evidence],
                }
                for r in self.recommendations
            ],
            "latency_ms": round(self.latency_ms, 1),
        }

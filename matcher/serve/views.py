"""A `MatchResult` shaped for the desk page: evidence grouped by need, kind labels, sources, review flag.

Reads only the result's own `to_dict()` (the `--json` shape) plus the catalog for names and sources,
so the page shows exactly what the API returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from matcher.catalog import Catalog
from matcher.result import MatchResult
from matcher.schema import KIND_LABEL_KO, Capability, CapabilityKind

REVIEW_BELOW = 0.3
"""Below this top score the page asks for a person's review even when the matcher did not abstain.
Not calibrated: a conservative default for the desk, set with `matcher serve --review-below`."""

WHOLE_REQUEST = "요청 전체"


@dataclass
class EvidenceView:
    institute: str
    institute_name: str
    capability_id: str
    kind: str
    kind_label: str
    title: str
    text: str
    score: float
    sources: list[str]
    basis: str


@dataclass
class NeedGroup:
    need: str
    label: str
    items: list[EvidenceView] = field(default_factory=list)


@dataclass
class MemberView:
    institute: str
    name: str
    needs: list[str]
    coverage: float


@dataclass
class RecommendationView:
    rank: int
    kind: str
    kind_label: str
    institutes: list[str]
    names: list[str]
    score: float
    members: list[MemberView]
    groups: list[NeedGroup]


@dataclass
class ResultView:
    request_id: str
    request: str
    needs: list[str]
    abstained: bool
    confidence: float
    review: bool
    review_reason: str
    latency_ms: float
    recommendations: list[RecommendationView]


def _record_index(catalog: Catalog) -> dict[str, Capability]:
    return {c.id: c for c in catalog.capabilities}


def kind_label(kind: str) -> str:
    try:
        return KIND_LABEL_KO[CapabilityKind(kind)]
    except ValueError:
        return kind


def result_view(
    result: MatchResult, catalog: Catalog, *, review_below: float = REVIEW_BELOW, records=None
) -> ResultView:
    """The page's view of a result; `records` (id -> Capability) may be passed to skip rebuilding it."""
    data = result.to_dict()
    records = records if records is not None else _record_index(catalog)
    names = {i.id: i.name_ko for i in catalog.institutes}
    need_order = {need: n for n, need in enumerate(data["needs"])}
    recs = []
    for r in data["recommendations"]:
        groups: dict[str, NeedGroup] = {}
        for e in r["evidence"]:
            need = e["need"]
            is_whole = need not in need_order
            group = groups.setdefault(
                need, NeedGroup(need, WHOLE_REQUEST if is_whole else f"세부 항목 {need_order[need] + 1}")
            )
            record = records.get(e["capability_id"])
            group.items.append(
                EvidenceView(
                    institute=e["institute"],
                    institute_name=names.get(e["institute"], e["institute"]),
                    capability_id=e["capability_id"],
                    kind=e["kind"],
                    kind_label=kind_label(e["kind"]),
                    title=e["title"],
                    text=e["text"],
                    score=e["score"],
                    sources=list(record.sources) if record is not None else [],
                    basis=record.basis if record is not None else "general",
                )
            )
        ordered = sorted(groups.values(), key=lambda g: need_order.get(g.need, -1))
        members = [
            MemberView(c["institute"], names.get(c["institute"], c["institute"]), c["needs"], c["coverage"])
            for c in r["covers"]
        ]
        recs.append(
            RecommendationView(
                rank=r["rank"],
                kind=r["kind"],
                kind_label="융복합" if r["kind"] == "joint" else "단독",
                institutes=r["institutes"],
                names=r["names"],
                score=r["score"],
                members=members,
                groups=ordered,
            )
        )
    review = data["abstained"] or data["confidence"] < review_below
    reason = ""
    if data["abstained"]:
        reason = "적합한 기관을 확신할 수 없어 추천을 보류했습니다. 가장 가까운 후보를 보여 드립니다."
    elif review:
        reason = f"신뢰도 {data['confidence']:.2f}가 기준 {review_below:.2f}보다 낮습니다."
    return ResultView(
        request_id=data["id"],
        request=data["request"],
        needs=data["needs"],
        abstained=data["abstained"],
        confidence=data["confidence"],
        review=review,
        review_reason=reason,
        latency_ms=data["latency_ms"],
        recommendations=recs,
    )

"""Evidence: the capability records behind a recommended institute, each with the need it matched."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from matcher.hits import QueryHits
from matcher.index_store import IndexSet
from matcher.result import Evidence
from matcher.schema import Capability


def institute_evidence(
    institute: int,
    hits: Sequence[QueryHits],
    labels: Sequence[str],
    owner: np.ndarray,
    records: Sequence[Capability],
    limit: int,
) -> list[Evidence]:
    """The institute's `limit` best records across the whole request and its needs.

    Args:
        institute: position in the catalog; hits: the request's queries (whole first, then needs);
        labels: the text of each query; owner: institute position of every record.
    """
    best: dict[int, tuple[float, int]] = {}
    for q, h in enumerate(hits):
        mine = owner[h.ids] == institute
        for rid, s in zip(h.ids[mine], h.scores[mine], strict=True):
            if s > best.get(int(rid), (-1.0, 0))[0]:
                best[int(rid)] = (float(s), q)
    top = sorted(best.items(), key=lambda kv: -kv[1][0])[:limit]
    out = []
    for rid, (s, q) in top:
        rec = records[rid]
        out.append(Evidence(rec.institute, rec.id, rec.kind.value, rec.title, rec.description, s, labels[q]))
    return out


def members_evidence(
    members: Sequence[int], hits: Sequence[QueryHits], labels: Sequence[str], indexes: IndexSet, limit: int
) -> tuple[Evidence, ...]:
    """Each member's evidence in turn (a joint recommendation shows every member's records)."""
    return tuple(
        e for m in members for e in institute_evidence(m, hits, labels, indexes.owner, indexes.records, limit)
    )

"""Checks that keep the catalog quotable: claims with sources, sites that exist, records that differ.

`load_catalog` rejects what is malformed; these checks warn on what is well-formed but not to be trusted
at a triage desk: an accreditation claim nobody sourced, equipment at a site the institute does not have,
and a record that says the same thing as another institute's (clones erase the signal that tells
institutes apart). `matcher catalog validate` prints them; `--strict` turns them into failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from matcher.catalog import Catalog
from matcher.problems import Problem
from matcher.schema import Capability

NEAR_DUPLICATE_THRESHOLD = 0.7
"""Cosine of character 2-4-gram TF-IDF vectors of two descriptions at or above which records of two
institutes count as near-duplicates. Chosen on the catalog of 2026-12-03 (docs/decisions.md): records
that one author wrote as distinct within one institute reached 0.7 twice in 3,382 and never 0.8, while
the cross-institute clones the catalog review found (FITI/KOTITI/KATRI test descriptions) scored 0.79-1.0.
"""


@dataclass(frozen=True)
class NearDuplicate:
    a: str
    b: str
    similarity: float


def near_duplicates(
    records: tuple[Capability, ...] | list[Capability], threshold: float = NEAR_DUPLICATE_THRESHOLD
) -> list[NearDuplicate]:
    """Pairs of records of different institutes whose descriptions are near-duplicates, most similar first."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(records) < 2:
        return []
    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit_transform(
        [r.description for r in records]
    )
    owner = np.array([r.institute for r in records])
    out = []
    for start in range(0, len(records), 512):  # blocks keep memory flat on a large catalog
        block = (vectors[start : start + 512] @ vectors.T).toarray()
        rows, cols = np.nonzero(block >= threshold)
        for i, j in zip(rows + start, cols, strict=True):
            if i < j and owner[i] != owner[j]:
                out.append(NearDuplicate(records[i].id, records[j].id, float(block[i - start, j])))
    return sorted(out, key=lambda d: (-d.similarity, d.a, d.b))


@lru_cache(maxsize=64)
def _record_lines(path: str) -> dict[str, int]:
    """Line of each `- id: <record>` in an institute file (warnings name a line, like errors do)."""
    lines: dict[str, int] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return lines
    for number, line in enumerate(text.splitlines(), start=1):
        if m := re.match(r"\s*-\s*id:\s*([^\s#]+)", line):
            lines.setdefault(m.group(1).strip("'\""), number)
    return lines


def _where(catalog: Catalog, record: Capability) -> tuple[str, int | None]:
    path = str(Path(catalog.source) / f"{record.institute}.yaml")
    return path, _record_lines(path).get(record.id)


def _at_site(location: str, sites: list[str]) -> bool:
    """A location names a site when it starts with the site's name ("창원 본원 분석동" at "창원 본원")."""
    return any(location.startswith(site) for site in sites)


def lint(catalog: Catalog, threshold: float = NEAR_DUPLICATE_THRESHOLD) -> list[Problem]:
    """Every warning on a valid catalog: unsourced accreditation, unknown site, near-duplicates."""
    _record_lines.cache_clear()
    out: list[Problem] = []
    by_id = {r.id: r for r in catalog.capabilities}
    for record in catalog.capabilities:
        file, line = _where(catalog, record)
        if record.accreditation and not record.sources:
            out.append(
                Problem(file, "accreditation claimed without a source", line, record.id, "accreditation")
            )
        sites = catalog.institute(record.institute).site_names()
        if record.location and sites and not _at_site(record.location, sites):
            out.append(
                Problem(
                    file,
                    f"location {record.location!r} is not one of the institute's sites {sites}",
                    line,
                    record.id,
                    "location",
                )
            )
    for dup in near_duplicates(catalog.capabilities, threshold):
        record = by_id[dup.a]
        file, line = _where(catalog, record)
        out.append(
            Problem(
                file,
                f"description near-duplicates {dup.b} ({by_id[dup.b].institute}), similarity "
                f"{dup.similarity:.2f} >= {threshold}",
                line,
                record.id,
                "description",
            )
        )
    return out


def sourced_counts(catalog: Catalog) -> dict[str, int]:
    """Records that cite at least one source, per institute."""
    out = {i.id: 0 for i in catalog.institutes}
    for record in catalog.capabilities:
        out[record.institute] += bool(record.sources)
    return out

"""Import capability records from spreadsheets (CSV or XLSX) into the YAML catalog.

Institutes keep their staff and equipment registries as spreadsheets. One row is one record:

| column | required | meaning |
|---|---|---|
| institute | yes | institute id (or any name the catalog resolves) |
| kind | yes | staff / technology / equipment (인력 / 기술 / 장비 also accepted) |
| title | yes | record title |
| description | yes | Korean description |
| id | no | record id; generated as `<institute>-<s|t|e><NN>` when empty |
| keywords, applications | no | lists separated by `;` or `,` |
| team, role, field | no | staff fields |
| model, specs, purpose, location, accreditation | no | equipment fields |

Rows with problems are reported with file, line (spreadsheet row) and field; valid rows are merged
into `data/institutes/<id>.yaml` (a record with an existing id is replaced, others appended).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from matcher.catalog import Catalog
from matcher.problems import InputError, Problem, problems_from_validation
from matcher.schema import Capability

KIND_ALIASES = {
    "인력": "staff",
    "연구인력": "staff",
    "기술": "technology",
    "장비": "equipment",
    "시험장비": "equipment",
}
LIST_COLUMNS = ("keywords", "applications")
COLUMNS = (
    "id",
    "institute",
    "kind",
    "title",
    "description",
    "keywords",
    "team",
    "role",
    "field",
    "applications",
    "model",
    "specs",
    "purpose",
    "location",
    "accreditation",
)


@dataclass(frozen=True)
class ImportReport:
    added: int
    replaced: int
    files: tuple[str, ...]
    problems: tuple[Problem, ...]


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (spreadsheet row number, row as column -> text) from a CSV or XLSX file."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        sheet = load_workbook(path, read_only=True, data_only=True).active
        rows = sheet.iter_rows(values_only=True)
        header = [str(h or "").strip().lower() for h in next(rows, [])]
        for number, values in enumerate(rows, start=2):
            row = {h: "" if v is None else str(v).strip() for h, v in zip(header, values, strict=False)}
            if any(row.values()):
                yield number, row
        return
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        reader.fieldnames = [f.strip().lower() for f in reader.fieldnames or []]
        for number, row in enumerate(reader, start=2):
            row = {k: (v or "").strip() for k, v in row.items() if k}
            if any(row.values()):
                yield number, row


def _split_list(text: str) -> list[str]:
    return [t.strip() for t in re.split(r"[;,\n]", text) if t.strip()]


def row_to_record(row: dict[str, str], catalog: Catalog, *, file: str, line: int) -> dict | list[Problem]:
    """Validate one row; return the YAML-ready record or the row's problems."""
    unknown_cols = [c for c in row if c not in COLUMNS]
    if unknown_cols:
        return [Problem(file, f"unknown column(s) {unknown_cols}; allowed: {list(COLUMNS)}", line=line)]
    institute = catalog.resolve(row.get("institute", "")) if row.get("institute") else None
    if institute is None:
        return [
            Problem(file, f"unknown institute {row.get('institute', '')!r}", line=line, field="institute")
        ]
    data: dict[str, object] = {k: v for k, v in row.items() if v and k not in LIST_COLUMNS}
    data["institute"] = institute
    data["kind"] = KIND_ALIASES.get(row.get("kind", ""), row.get("kind", ""))
    for col in LIST_COLUMNS:
        if row.get(col):
            data[col] = _split_list(row[col])
    data.setdefault("id", "pending-id")
    try:
        Capability.model_validate(data)
    except ValidationError as exc:
        return problems_from_validation(exc, file=file, line=line, record=row.get("id") or None)
    return data


def _next_id(existing: set[str], institute: str, kind: str) -> str:
    prefix = f"{institute}-{kind[0]}"
    n = 1
    while f"{prefix}{n:02d}" in existing:
        n += 1
    return f"{prefix}{n:02d}"


def import_table(
    path: str | Path, catalog: Catalog, catalog_dir: str | Path, *, dry_run: bool = False
) -> ImportReport:
    """Merge a spreadsheet of capability records into the catalog's YAML files.

    Raises:
        InputError: when the file is missing; row problems are returned in the report instead, so
            that every good row is kept.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError([Problem(str(path), "file not found")])
    problems: list[Problem] = []
    by_institute: dict[str, list[dict]] = {}
    for line, row in read_rows(path):
        result = row_to_record(row, catalog, file=str(path), line=line)
        if isinstance(result, list):
            problems += result
        else:
            by_institute.setdefault(str(result["institute"]), []).append(result)
    added = replaced = 0
    files = []
    for institute, records in by_institute.items():
        target = Path(catalog_dir) / f"{institute}.yaml"
        doc = yaml.safe_load(target.read_text(encoding="utf-8"))
        caps = doc.setdefault("capabilities", [])
        position = {c["id"]: i for i, c in enumerate(caps)}
        existing = set(position)
        for record in records:
            record = {k: v for k, v in record.items() if k != "institute"}
            if record["id"] == "pending-id":
                record["id"] = _next_id(existing, institute, str(record["kind"]))
            existing.add(str(record["id"]))
            if record["id"] in position:
                caps[position[record["id"]]] = record
                replaced += 1
            else:
                position[str(record["id"])] = len(caps)
                caps.append(record)
                added += 1
        if not dry_run:
            target.write_text(
                yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100), encoding="utf-8"
            )
        files.append(str(target))
    return ImportReport(added, replaced, tuple(files), tuple(problems))

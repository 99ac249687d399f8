"""Spreadsheet import: good rows merged, bad rows reported with their row number."""

from __future__ import annotations

import shutil

from matcher.catalog import load_catalog
from matcher.importer import import_table
from tests.conftest import FIXTURE_CATALOG


def test_csv_import_merges_good_rows_and_reports_bad(tmp_path):
    d = tmp_path / "cat"
    shutil.copytree(FIXTURE_CATALOG, d)
    csv = tmp_path / "equipment.csv"
    csv.write_text(
        "institute,kind,title,description,keywords,model\n"
        "재료연,장비,투과전자현미경 (TEM),나노 석출물과 계면을 원자 수준에서 관찰한다.,TEM; 석출물,TEM\n"
        "nowhere,equipment,X,Y,,\n"
        "KATECH,equipment,,설명만 있는 행,,\n",
        encoding="utf-8",
    )
    report = import_table(csv, load_catalog(d), d)
    assert report.added == 1
    assert [(p.line, p.field) for p in report.problems] == [(3, "institute"), (4, "title")]
    catalog = load_catalog(d)
    new = [c for c in catalog.capabilities if c.title.startswith("투과전자현미경")]
    assert len(new) == 1 and new[0].id == "kims-e04" and new[0].keywords == ["TEM", "석출물"]

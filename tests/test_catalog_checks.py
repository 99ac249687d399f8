"""Catalog checks: unsourced accreditation, unknown sites, near-duplicate records across institutes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from matcher.catalog import load_catalog
from matcher.catalog_checks import NEAR_DUPLICATE_THRESHOLD, lint, near_duplicates, sourced_counts
from matcher.cli.app import app
from matcher.schema import Capability
from tests.test_catalog import broken_copy

runner = CliRunner()
SHIPPED = "data/institutes"


def record(rid: str, institute: str, description: str) -> Capability:
    return Capability(id=rid, institute=institute, kind="technology", title=rid, description=description)


def test_near_duplicates_only_across_institutes():
    text = "섬유 제품의 세탁 견뢰도와 마찰 견뢰도를 KS 및 ISO 규격에 따라 시험하고 성적서를 발급한다."
    records = [
        record("a-1", "a", text),
        record("a-2", "a", text),  # the same institute may repeat itself: not a cross-institute clone
        record("b-1", "b", text + " 수출용 제품에 대응한다."),
        record("c-1", "c", "초고압 수소 용기의 파열 시험과 반복 가압 시험을 수행한다."),
    ]
    dups = near_duplicates(records)
    assert {(d.a, d.b) for d in dups} == {("a-1", "b-1"), ("a-2", "b-1")}
    assert all(d.similarity >= NEAR_DUPLICATE_THRESHOLD for d in dups)
    assert near_duplicates(records, threshold=1.01) == []


def test_lint_names_file_line_record_and_field(tmp_path):
    d = broken_copy(tmp_path, "kims.yaml", "    model: XRD\n", "    model: XRD\n    location: 부산 분원\n")
    text = (d / "kims.yaml").read_text(encoding="utf-8")
    (d / "kims.yaml").write_text(text.replace("  city: 창원\n", "  city: 창원\n  sites: [창원 본원]\n", 1))
    warnings = lint(load_catalog(d))
    by_field = {(w.record, w.field): w for w in warnings}
    accreditation = by_field[("kims-e01", "accreditation")]
    assert accreditation.file.endswith("kims.yaml")
    assert (d / "kims.yaml").read_text(encoding="utf-8").splitlines()[accreditation.line - 1].strip() == (
        "- id: kims-e01"
    )
    assert "부산 분원" in by_field[("kims-e02", "location")].message


def test_a_source_clears_the_accreditation_warning(tmp_path):
    d = broken_copy(
        tmp_path,
        "kims.yaml",
        "    accreditation: KOLAS\n",
        '    accreditation: KOLAS\n    sources: ["kolas.go.kr 인정범위 (2025-01-01)"]\n',
    )
    cat = load_catalog(d)
    assert ("kims-e01", "accreditation") not in {(w.record, w.field) for w in lint(cat)}
    assert sourced_counts(cat)["kims"] == 1
    assert cat.capabilities[[c.id for c in cat.capabilities].index("kims-e01")].basis == "sourced"


def test_validate_strict_fails_on_warnings_and_json_lists_them(tmp_path):
    d = broken_copy(tmp_path, "kims.yaml", "    model: XRD\n", "    model: XRD\n")
    result = runner.invoke(app, ["catalog", "validate", "--catalog", str(d), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {w["field"] for w in data["warnings"]} == {"accreditation"}  # fixture: two unsourced KOLAS marks
    strict = runner.invoke(app, ["catalog", "validate", "--catalog", str(d), "--strict"])
    assert strict.exit_code == 2


def test_stats_json_reports_sourced_per_institute_and_total(tmp_path):
    d = broken_copy(
        tmp_path,
        "kims.yaml",
        "    model: XRD\n",
        '    model: XRD\n    sources: ["a.example/1 (2024-01-01)"]\n',
    )
    result = runner.invoke(app, ["catalog", "stats", "--catalog", str(d), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {r["id"]: r for r in data["institutes"]}
    assert rows["kims"]["sourced"] == 1 and rows["ktl"]["sourced"] == 0
    assert data["totals"]["sourced"] == 1
    assert data["totals"]["records"] == sum(r["records"] for r in data["institutes"])


# ---------------------------------------------------------------- the shipped catalog (issue 15)
def test_shipped_catalog_has_no_clones_across_institutes():
    cat = load_catalog(SHIPPED)
    descriptions: dict[str, str] = {}
    for rec in cat.capabilities:
        other = descriptions.setdefault(" ".join(rec.description.split()), rec.institute)
        assert other == rec.institute, f"{rec.id} repeats a description of {other}"
    dups = near_duplicates(cat.capabilities)
    assert dups == [], f"{len(dups)} near-duplicate pairs, e.g. {dups[:3]}"


def test_shipped_catalog_is_mostly_sourced_and_quotes_no_unsourced_accreditation():
    cat = load_catalog(SHIPPED)
    sourced = sum(sourced_counts(cat).values())
    assert sourced / len(cat.capabilities) >= 0.5
    assert [r.id for r in cat.capabilities if r.accreditation and not r.sources] == []
    assert [w for w in lint(cat) if w.field == "location"] == []

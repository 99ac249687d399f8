"""Catalog loading and validation: every problem reported with file, line and field."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from matcher.catalog import load_catalog, normalize_name
from matcher.cli.app import app
from matcher.problems import InputError
from tests.conftest import FIXTURE_CATALOG

runner = CliRunner()


def broken_copy(tmp_path, name: str, old: str, new: str):
    d = tmp_path / "cat"
    shutil.copytree(FIXTURE_CATALOG, d)
    path = d / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return d


def problems_of(directory) -> list:
    with pytest.raises(InputError) as exc:
        load_catalog(directory)
    return exc.value.problems


def test_fixture_catalog_loads(fixture_catalog):
    assert len(fixture_catalog.institutes) == 5
    assert len(fixture_catalog.capabilities) == 35
    assert {c.institute for c in fixture_catalog.capabilities} == set(fixture_catalog.institute_ids)


def test_content_hash_changes_with_content(tmp_path, fixture_catalog):
    d = broken_copy(tmp_path, "kims.yaml", "표면기술연구실", "표면공학연구실")
    assert load_catalog(d).content_hash != fixture_catalog.content_hash
    assert load_catalog(FIXTURE_CATALOG).content_hash == fixture_catalog.content_hash


def test_resolve_names(fixture_catalog):
    for label in (
        "kims",
        "KIMS",
        "한국재료연구원",
        "재료연",
        "구 재료연구소",
        "Korea Institute of Materials Science",
    ):
        assert fixture_catalog.resolve(label) == "kims", label
    assert fixture_catalog.resolve("없는기관") is None
    assert normalize_name(" K I M S ") == "kims"


def test_resolve_labels_as_published_cases_write_them(fixture_catalog):
    for label in (
        "한국재료연구원(KIMS)",
        "한국재료연구원 (KIMS)",
        "KIMS(한국재료연구원)",
        "(재)한국재료연구원",
        "재단법인 한국재료연구원",
        "재료연구소",  # a former name, listed as "구 재료연구소"
        "KIMS 창원 본원",
        "KIMS 한국재료연구원",
        "한국재료연구원 표면기술연구본부",
        "한국재료연구원표면기술연구본부",
    ):
        assert fixture_catalog.resolve(label) == "kims", label
    for label in ("KIMS/KATECH", "한국재료연구원·한국자동차연구원", "KIMS (KATECH)", "창원 본원", "", "한국"):
        assert fixture_catalog.resolve(label) is None, label


def test_bad_yaml_names_file_and_line(tmp_path):
    d = broken_copy(tmp_path, "keti.yaml", "  - id: keti-s02", "  - id: [keti-s02")
    [p] = problems_of(d)
    assert p.file.endswith("keti.yaml") and "invalid YAML" in p.message and p.line is not None


def test_missing_field(tmp_path):
    d = broken_copy(tmp_path, "kims.yaml", "    title: 표면기술연구실\n", "")
    [p] = problems_of(d)
    assert p.record == "kims-s01" and p.field == "title" and "missing" in p.message and p.line


def test_wrong_kind_and_empty_text_reported_together(tmp_path):
    d = broken_copy(
        tmp_path,
        "kims.yaml",
        "    kind: staff\n    title: 표면기술연구실",
        "    kind: person\n    title: 표면기술연구실",
    )
    text = (
        (d / "katech.yaml")
        .read_text(encoding="utf-8")
        .replace("    title: 부품신뢰성시험팀", '    title: "  "')
    )
    (d / "katech.yaml").write_text(text, encoding="utf-8")
    problems = problems_of(d)
    assert {(p.record, p.field) for p in problems} == {("kims-s01", "kind"), ("katech-s01", "title")}


def test_duplicate_record_id(tmp_path):
    d = broken_copy(tmp_path, "keti.yaml", "id: keti-s02", "id: kims-s01")
    [p] = problems_of(d)
    # Files load in name order: keti.yaml first, so the copy in kims.yaml is the duplicate.
    assert p.record == "kims-s01" and "duplicate" in p.message and "keti.yaml" in p.message
    assert p.file.endswith("kims.yaml") and p.line == 13


def test_unknown_institute_on_record(tmp_path):
    d = broken_copy(tmp_path, "kims.yaml", "  - id: kims-s02\n", "  - id: kims-s02\n    institute: nowhere\n")
    [p] = problems_of(d)
    assert p.field == "institute" and "nowhere" in p.message


def test_cli_validate_broken_exits_2_without_traceback(tmp_path):
    d = broken_copy(
        tmp_path,
        "kims.yaml",
        "    kind: staff\n    title: 표면기술연구실",
        "    kind: person\n    title: 표면기술연구실",
    )
    result = runner.invoke(app, ["catalog", "validate", "--catalog", str(d)])
    assert result.exit_code == 2
    assert "kims.yaml" in result.output and "kind" in result.output
    assert "Traceback" not in result.output


def test_cli_validate_json_lists_problems(tmp_path):
    d = broken_copy(tmp_path, "keti.yaml", "id: keti-s02", "id: kims-s01")
    result = runner.invoke(app, ["catalog", "validate", "--catalog", str(d), "--json"])
    assert result.exit_code == 2
    assert '"problems"' in result.output


def test_cli_stats_json_shape():
    import json

    result = runner.invoke(app, ["catalog", "stats", "--catalog", str(FIXTURE_CATALOG), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert set(data) == {"institutes", "totals"}
    kinds = {"staff", "technology", "equipment", "profile", "programme"}
    assert set(data["institutes"][0]) == {"id", "name_ko", "records", "sourced", *kinds}
    assert data["totals"] == {
        "institutes": 5,
        "staff": 10,
        "technology": 10,
        "equipment": 15,
        "profile": 0,
        "programme": 0,
        "records": 35,
        "sourced": 0,
    }


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("matcher ")


def test_resolve_many_splits_a_label_listing_several_institutes(fixture_catalog):
    assert fixture_catalog.resolve_many("KIMS") == ["kims"]
    assert fixture_catalog.resolve_many("KIMS, KATECH") == ["kims", "katech"]
    assert fixture_catalog.resolve_many("한국재료연구원(KIMS)+한국자동차연구원") == ["kims", "katech"]
    assert fixture_catalog.resolve_many("재료연 및 자동차연구원") == ["kims", "katech"]
    assert fixture_catalog.resolve_many("KIMS; KIMS") == ["kims"]
    assert fixture_catalog.resolve_many("KIMS, 없는기관") is None
    assert fixture_catalog.resolve_many("없는기관") is None


def test_a_former_name_shared_by_two_institutes_loads_and_names_neither(tmp_path):
    d = broken_copy(
        tmp_path, "kims.yaml", "  city: 창원\n", "  city: 창원\n  former_names: [한국기계금속시험연구소]\n"
    )
    ktl = d / "ktl.yaml"
    text = ktl.read_text(encoding="utf-8")
    ktl.write_text(
        text.replace("  city:", "  former_names: [한국기계금속시험연구소, 한국정밀기기센터]\n  city:", 1)
    )
    catalog = load_catalog(d)
    assert catalog.resolve("한국기계금속시험연구소") is None
    assert catalog.resolve("한국정밀기기센터") == "ktl"
    # a current alias shared by two institutes is still an error
    text = (d / "kims.yaml").read_text(encoding="utf-8")
    (d / "kims.yaml").write_text(text.replace("  city: 창원\n", "  city: 창원\n  aliases: [KTL]\n", 1))
    assert any(p.field == "institute.aliases" for p in problems_of(d))

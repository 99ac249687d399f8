"""The synthetic catalog generator: deterministic per seed, schema-valid, faithful to its source."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from matcher import synth
from matcher.catalog import load_catalog
from matcher.schema import Capability, CapabilityKind, LabeledRequest

FIXTURE = Path(__file__).parent / "fixtures" / "catalog"


@pytest.fixture(scope="module")
def source():
    return load_catalog(FIXTURE)


def dumps(records):
    return [r.model_dump(mode="json") for r in records]


def test_same_seed_same_records_other_seed_other_records(source):
    a = synth.synth_catalog(3000, seed=5, source=source)
    b = synth.synth_catalog(3000, seed=5, source=source)
    c = synth.synth_catalog(3000, seed=6, source=source)
    assert dumps(a.capabilities) == dumps(b.capabilities)
    assert a.content_hash == b.content_hash
    assert dumps(a.capabilities) != dumps(c.capabilities)


def test_smaller_catalog_is_a_prefix_and_streams_from_any_start(source):
    big = list(synth.synth_capabilities(9000, seed=1, source=source))
    small = list(synth.synth_capabilities(5000, seed=1, source=source))
    middle = list(synth.synth_capabilities(1000, seed=1, source=source, start=4500))
    assert dumps(small) == dumps(big[:5000])
    assert dumps(middle) == dumps(big[4500:5500])


def test_records_are_valid_unique_and_follow_their_source(source):
    catalog = synth.synth_catalog(5000, seed=2, source=source)
    records = catalog.capabilities
    assert len(records) == 5000
    assert len({r.id for r in records}) == 5000
    institutes = set(source.institute_ids)
    source_keywords = {k for c in source.capabilities for k in c.keywords}
    allowed = {
        CapabilityKind.staff: {"team", "role", "field"},
        CapabilityKind.technology: {"applications"},
        CapabilityKind.equipment: {"model", "specs", "purpose", "location"},
    }
    seen: dict[str, set] = {}
    for c in source.capabilities:
        for name in ("team", "role", "field", "model", "specs", "purpose", "location"):
            seen.setdefault(name, set()).add(getattr(c, name))
        seen.setdefault("applications", set()).update(c.applications)
    for r in records:
        assert Capability.model_validate(r.model_dump()) == r
        assert r.institute in institutes
        assert r.keywords and set(r.keywords) <= source_keywords
        # Kind-specific fields appear on their kind only, with values the source uses for that kind.
        for name in ("team", "role", "field", "applications", "model", "specs", "purpose", "location"):
            value = getattr(r, name)
            if value:
                assert name in allowed[r.kind]
                assert set(value if isinstance(value, list) else [value]) <= seen[name]
    assert {r.kind for r in records} == set(synth.SYNTH_KINDS)
    assert {r.institute for r in records} == institutes
    # Recombination: far more distinct texts than source records.
    assert len({r.text() for r in records}) > 10 * len(source.capabilities)
    assert catalog.counts()  # the Catalog API works on synthetic catalogs


def test_templates_match_the_records_without_building_them(source):
    templates = synth.synth_templates(6000, seed=3, source=source, start=2000)
    records = list(synth.synth_capabilities(6000, seed=3, source=source, start=2000))
    for t, r in zip(templates, records, strict=True):
        tpl = source.capabilities[t]
        assert (tpl.institute, tpl.kind) == (r.institute, r.kind)


def test_requests_are_deterministic_and_labelled(source):
    a = synth.synth_requests(50, seed=4, source=source)
    assert [r.model_dump() for r in a] == [
        r.model_dump() for r in synth.synth_requests(50, seed=4, source=source)
    ]
    assert all(isinstance(r, LabeledRequest) and r.text for r in a)
    assert all(1 <= len(r.institutes) <= 2 and set(r.institutes) <= set(source.institute_ids) for r in a)
    assert any(len(r.institutes) == 2 for r in a)
    assert len({r.id for r in a}) == 50


def test_edit_records_changes_the_requested_share(source):
    catalog = synth.synth_catalog(2000, seed=0, source=source)
    edited, changed = synth.edit_records(catalog, 0.01, seed=0)
    assert len(changed) == 20
    diff = [a.id for a, b in zip(catalog.capabilities, edited.capabilities, strict=True) if a != b]
    assert sorted(diff) == changed
    assert edited.content_hash != catalog.content_hash


def test_incomplete_data_dir_falls_back_to_the_fixture(tmp_path, monkeypatch):
    (tmp_path / "data" / "institutes").mkdir(parents=True)
    (tmp_path / "data" / "institutes" / "bad.yaml").write_text("institute: [", encoding="utf-8")
    shutil.copytree(FIXTURE, tmp_path / "tests" / "fixtures" / "catalog")
    monkeypatch.setattr(synth, "_REPO", tmp_path)
    assert synth.source_catalog().source == str(tmp_path / "tests" / "fixtures" / "catalog")

"""The parsed-catalog cache: same catalog as parsing, re-parsed on any edit, never trusted when damaged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from matcher import catalog_cache
from matcher.catalog import load_catalog
from matcher.problems import InputError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "catalog"


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "catalog"))


def _parse_forbidden(monkeypatch):
    def refuse(directory):
        raise AssertionError("parsed YAML although the cache was fresh")

    monkeypatch.setattr(catalog_cache, "load_catalog", refuse)


def test_second_load_comes_from_the_cache_and_equals_parsing(catalog_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = catalog_cache.load_catalog_cached(catalog_dir, cache)
    assert len(list(cache.glob("catalog-*.json"))) == 1
    _parse_forbidden(monkeypatch)
    second = catalog_cache.load_catalog_cached(catalog_dir, cache)
    parsed = load_catalog(catalog_dir)
    assert second.institutes == parsed.institutes == first.institutes
    assert second.capabilities == parsed.capabilities
    assert second.content_hash == parsed.content_hash
    assert second.resolve(parsed.institutes[0].name_ko) == parsed.institutes[0].id


def test_an_edited_file_is_parsed_again(catalog_dir, tmp_path):
    cache = tmp_path / "cache"
    before = catalog_cache.load_catalog_cached(catalog_dir, cache)
    record = before.capabilities[0]
    path = catalog_dir / f"{record.institute}.yaml"
    text = path.read_text(encoding="utf-8")
    title = record.title
    assert title in text
    path.write_text(text.replace(title, title + " 개정", 1), encoding="utf-8")
    after = catalog_cache.load_catalog_cached(catalog_dir, cache)
    assert any(c.title == title + " 개정" for c in after.capabilities)
    assert after.content_hash != before.content_hash


def test_a_damaged_entry_is_ignored_and_rewritten(catalog_dir, tmp_path):
    cache = tmp_path / "cache"
    catalog_cache.load_catalog_cached(catalog_dir, cache)
    (entry,) = cache.glob("catalog-*.json")
    entry.write_text('{"institutes": [', encoding="utf-8")
    again = catalog_cache.load_catalog_cached(catalog_dir, cache)
    assert again.capabilities == load_catalog(catalog_dir).capabilities
    assert entry.read_text(encoding="utf-8").startswith('{"institutes":[{')


def test_a_catalog_with_problems_raises_and_is_not_cached(catalog_dir, tmp_path):
    cache = tmp_path / "cache"
    (catalog_dir / "broken.yaml").write_text("institute: [unclosed\n", encoding="utf-8")
    with pytest.raises(InputError):
        catalog_cache.load_catalog_cached(catalog_dir, cache)
    assert not list(cache.glob("catalog-*.json"))
    with pytest.raises(InputError):
        catalog_cache.load_catalog_cached(tmp_path / "missing", cache)

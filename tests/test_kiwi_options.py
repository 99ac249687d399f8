"""kiwi without its multi-word and typo dictionaries (more than half its start-up): tokens nearly all
unchanged, and a BM25 index built with another tokenizer is stale rather than silently searched with
other tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matcher.index_store import StaleIndex, build_indexes, load_indexes, read_manifest
from matcher.korean import TOKENIZER, _content, normalize_text, split_needs, tokenize_many
from tests.conftest import FIXTURE_REQUESTS, fast_config


def _sample_texts(catalog) -> list[str]:
    texts = [c.text() for c in catalog.capabilities]
    for line in FIXTURE_REQUESTS.read_text(encoding="utf-8").splitlines():
        text = json.loads(line)["text"]
        texts += [text, *split_needs(text)]
    return texts


def test_tokens_agree_with_the_full_dictionary_on_the_fixtures(fixture_catalog):
    """Against kiwi with every dictionary: on everything the repo has, 44 of 6,976 texts differ (the
    multi-word one; the typo one changes none), docs/speed.md; on the fixtures, none."""
    from kiwipiepy import Kiwi

    full = Kiwi()
    texts = _sample_texts(fixture_catalog)
    ours = tokenize_many(texts)
    theirs = [_content(full.tokenize(normalize_text(t))) for t in texts]
    assert len(texts) > 50
    assert [t for t, a, b in zip(texts, ours, theirs, strict=True) if a != b] == []


def test_bm25_built_with_another_tokenizer_is_stale(tmp_path, fixture_catalog):
    cfg = fast_config(tmp_path)
    build_indexes(fixture_catalog, cfg)
    manifest = read_manifest(cfg.index_dir)
    assert manifest["lexical"]["bm25"]["tokenizer"] == TOKENIZER
    load_indexes(fixture_catalog, cfg)  # fresh: loads
    manifest["lexical"]["bm25"]["tokenizer"] = "kiwipiepy content morphemes"  # before this change
    (Path(cfg.index_dir) / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(StaleIndex, match="another tokenizer"):
        load_indexes(fixture_catalog, cfg)

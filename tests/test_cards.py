"""Institute cards: what goes on a card, BM25 parity with bm25s, the saved index, the re-ranker columns."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.cards import (
    CARD_KINDS,
    CardIndex,
    InstituteCards,
    card_key,
    catalog_cards,
    full_card,
    load_cards,
    role_card,
)
from matcher.hits import QueryHits
from matcher.rerank import CARD_COLS, FEATURE_NAMES, institute_features
from matcher.schema import Capability, Institute, Site


def _institute() -> Institute:
    return Institute(
        id="kiria",
        name_ko="한국로봇산업진흥원",
        name_en="Korea Institute for Robot Industry Advancement",
        acronym="KIRIA",
        aliases=["로봇진흥원"],
        city="대구",
        groups=["시스템·장비"],
        summary="로봇 보급과 시험인증을 맡는 기관",
        sites=[Site(name="대구 본원", city="대구", region="대구", role="로봇 시험인증센터")],
    )


def _record(rid: str, kind: str, title: str) -> Capability:
    return Capability(id=rid, institute="kiria", kind=kind, title=title, description=f"{title} 설명")


RECORDS = [
    _record("kiria-profile", "profile", "로봇 보급 지원 기관"),
    _record("kiria-prog01", "programme", "로봇활용 제조혁신 지원사업"),
    _record("kiria-e01", "equipment", "협동로봇 안전 시험기"),
]


def test_role_card_holds_names_summary_seats_and_role_records_only():
    card = role_card(_institute(), RECORDS)
    for part in ("한국로봇산업진흥원", "로봇진흥원", "시험인증을 맡는", "대구 본원 로봇 시험인증센터"):
        assert part in card
    assert "로봇활용 제조혁신 지원사업" in card and "로봇 보급 지원 기관" in card
    assert "협동로봇 안전 시험기" not in card


def test_full_card_adds_every_other_record():
    card = full_card(_institute(), RECORDS)
    assert card.startswith(role_card(_institute(), RECORDS))
    assert "협동로봇 안전 시험기" in card


def test_bm25_matches_bm25s_lucene():
    bm25s = pytest.importorskip("bm25s")
    docs = [
        ["로봇", "자동화", "로봇", "용접"],
        ["소재", "분석", "시험"],
        ["로봇", "시험", "인증", "안전", "시험"],
    ]
    query = ["로봇", "시험", "시험", "없는말"]
    ref = bm25s.BM25(k1=1.2, b=0.75)
    ref.index(docs, show_progress=False)
    ours = CardIndex.from_tokens(docs).scores(query)
    np.testing.assert_allclose(ours, ref.get_scores(query), rtol=1e-5)


def test_bm25_is_zero_without_a_shared_token():
    index = CardIndex.from_tokens([["로봇"], ["소재"]])
    assert index.scores(["섬유"]).tolist() == [0.0, 0.0]
    assert index.scores([]).tolist() == [0.0, 0.0]


def test_catalog_cards_and_scores_rank_the_institute_the_words_describe(fixture_catalog):
    cards = catalog_cards(fixture_catalog)
    assert set(cards) == set(CARD_KINDS)
    assert all(len(v) == len(fixture_catalog.institutes) for v in cards.values())
    built = InstituteCards.build(fixture_catalog)
    scores = built.scores("한국재료연구원 같은 소재 전문 연구기관에서 금속 파손 원인 분석을 받고 싶습니다")
    assert scores.shape == (len(fixture_catalog.institutes), len(CARD_KINDS))
    kims = fixture_catalog.institute_ids.index("kims")
    assert int(np.argmax(scores[:, 0])) == kims and int(np.argmax(scores[:, 1])) == kims


def test_saved_cards_are_reused_and_rebuilt_when_stale(fixture_catalog, tmp_path, monkeypatch):
    path = tmp_path / "index" / "cards.npz"
    first = load_cards(fixture_catalog, path)
    assert path.is_file() and first.key == card_key(fixture_catalog)
    text = "차량 전장부품 EMC 시험"
    # a matching file is read, not rebuilt
    monkeypatch.setattr(InstituteCards, "build", classmethod(lambda cls, c: pytest.fail("rebuilt")))
    again = load_cards(fixture_catalog, path)
    np.testing.assert_allclose(again.scores(text), first.scores(text))
    monkeypatch.undo()
    # another catalog's (or tokenizer's) file is rebuilt and overwritten
    InstituteCards("stale-key", first.indexes).save(path)
    rebuilt = load_cards(fixture_catalog, path)
    assert rebuilt.key == card_key(fixture_catalog)
    assert InstituteCards.load(path).key == card_key(fixture_catalog)
    # a damaged file counts as missing
    path.write_bytes(b"not an npz")
    assert InstituteCards.load(path) is None
    assert load_cards(fixture_catalog, path).key == card_key(fixture_catalog)


def test_card_columns_are_relative_score_and_rank():
    n_inst = 3
    whole = QueryHits(np.array([0, 1]), np.array([0.5, 0.4]), np.array([0.5, 0.4, 0.0]), {})
    cards = np.array([[2.0, 1.0], [4.0, 0.0], [0.0, 3.0]])
    rows = institute_features(np.array([0.5, 0.4, 0.0]), whole, [], np.array([0, 1]), n_inst, cards=cards)
    role_rel, full_rel = CARD_COLS
    np.testing.assert_allclose(rows[:, role_rel], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(rows[:, role_rel + 1], np.log1p([1, 0, 2]))
    np.testing.assert_allclose(rows[:, full_rel], [1 / 3, 0.0, 1.0])
    np.testing.assert_allclose(rows[:, full_rel + 1], np.log1p([1, 2, 0]))
    assert FEATURE_NAMES[role_rel + 1] == "card_role_rank_log"
    # no card scored: the columns stay 0
    none = institute_features(
        np.array([0.5, 0.4, 0.0]), whole, [], np.array([0, 1]), n_inst, cards=np.zeros((3, 2))
    )
    assert not none[:, [role_rel, role_rel + 1, full_rel, full_rel + 1]].any()

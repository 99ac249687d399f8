"""Korean tokenisation for BM25 and splitting requests into needs."""

from __future__ import annotations

from matcher.korean import split_needs, tokenize


def test_particles_are_stripped():
    assert tokenize("차량용 ECU에서 EMC 시험에 떨어졌습니다") == ["차량", "ecu", "emc", "시험", "떨어지"]


def test_english_terms_match_whatever_case_or_spacing():
    assert "sic" in tokenize("SiC 파워모듈") and "sic" in tokenize("sic 모듈")
    assert "iso16750" in tokenize("ISO 16750 진동") and "iso16750" in tokenize("iso16750 진동")
    assert "fesem" in tokenize("FE-SEM 분석") and "sem" in tokenize("FE-SEM 분석")
    assert "sus304" in tokenize("SUS 304 볼트") and "sus304" in tokenize("SUS304볼트")


def test_full_width_is_normalised():
    assert "emc" in tokenize("ＥＭＣ 시험")


def test_split_needs_on_sentences_and_clauses():
    text = "알루미늄 주조 부품의 기공을 잡고 싶고, 개선품은 차량 진동 내구 시험까지 받아야 합니다. 또한 인증도 필요합니다."
    assert split_needs(text) == [
        "알루미늄 주조 부품의 기공을 잡고 싶고",
        "개선품은 차량 진동 내구 시험까지 받아야 합니다.",
        "또한 인증도 필요합니다.",
    ]


def test_split_needs_merges_short_fragments_and_caps_count():
    assert split_needs("짧다. 매우 짧다. 세라믹 히터 코팅이 벗겨집니다.") == [
        "짧다. 매우 짧다. 세라믹 히터 코팅이 벗겨집니다."
    ]
    many = " ".join(f"{i}번째 요구사항은 이러저러한 시험입니다." for i in range(8))
    assert len(split_needs(many, max_needs=3)) == 3
    assert split_needs("   ") == []

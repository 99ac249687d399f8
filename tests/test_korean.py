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


def test_a_company_introduction_is_context_for_the_next_need_not_a_need():
    intro = "광전송 모듈을 만드는 회사입니다."
    first = "장거리 광전송 제품의 납품 일정을 자체 인력만으로는 맞추기 어렵습니다."
    second = "상용화를 함께 마무리해 줄 전문 인력 파견을 요청합니다."
    assert split_needs(f"{intro} {first} {second}", fold_intro=True) == [f"{intro} {first}", second]
    # Without folding (the default) the introduction is a need of its own.
    assert split_needs(f"{intro} {first} {second}") == [intro, first, second]
    # An introduction that comes last joins the need before it; one alone stays the only piece.
    assert split_needs(f"{first} {intro}", fold_intro=True) == [f"{first} {intro}"]
    assert split_needs(intro, fold_intro=True) == [intro]


def test_only_sentences_that_say_who_the_company_is_are_introductions():
    from matcher.korean import is_company_intro

    for intro in (
        "대전의 무선통신 장비 업체입니다.",
        "팹리스 스타트업입니다",
        "수출용 호위함을 건조하는 조선사입니다.",
    ):
        assert is_company_intro(intro), intro
    for need in (
        "패널 개발과 검증 과정에서 협력할 연구기관을 찾습니다.",
        "협력할 회사를 찾고 있습니다.",
        "납품처는 자동차 부품 회사입니다만 인증이 필요합니다.",
        "분리막 소재·공정 개선을 함께 봐줄 전문 연구인력의 멘토링을 원합니다.",
    ):
        assert not is_company_intro(need), need

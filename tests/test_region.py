"""Region recognition on hand-written requests, and nearness between a company and institute seats."""

from __future__ import annotations

from matcher.region import Place, best_nearness, institute_seats, nearness, places_in, request_places
from matcher.schema import Institute, Site


def _cities(text: str, region: str | None = None) -> list[tuple[str, str | None]]:
    return [(p.region, p.city) for p in request_places(text, region)]


def test_no_region_and_words_that_only_look_like_places():
    assert places_in(None) == [] and places_in("") == []
    assert _cities("도금층 박리 원인을 알고 싶습니다. 시편 분석을 의뢰합니다.") == []
    # 경기 (economy), 대전류 (high current), 부산물 (by-product), 화성암 (igneous rock), 진주빛 (pearly)
    text = "경기 침체로 물량이 줄었고 대전류 시험과 부산물 처리, 화성암 분쇄, 진주빛 도료가 과제입니다."
    assert _cities(text) == []


def test_one_region_in_the_text():
    assert _cities("포항에서 철강 부품을 가공하는 회사입니다.") == [("경북", "포항")]
    assert _cities("창원 국가산단의 감속기 제조사입니다.") == [("경남", "창원")]


def test_several_regions_in_order_of_mention():
    got = _cities("본사는 서울에 있고 공장은 경북 구미시에 있습니다. 여수 협력사도 있습니다.")
    assert got == [("서울", "서울"), ("경북", None), ("경북", "구미"), ("전남", "여수")]


def test_region_only_in_a_company_address():
    text = "사출 금형의 냉각 불균일 문제입니다.\n(주)가나정밀, 주소: 경상북도 경산시 진량읍 공단로 1"
    assert ("경북", "경산") in _cities(text)


def test_region_field_comes_first_and_industrial_complexes_map_to_their_city():
    assert _cities("염색 폐수 처리", "대구 서구(비산염색공단)") == [("대구", "대구")]
    assert _cities("반월공단 도금업체입니다", "경기 안산")[0:2] == [("경기", None), ("경기", "안산")]
    assert ("경기", "안산") in _cities("반월공단의 도금업체입니다")
    assert ("충북", "청주") in _cities("오송 바이오 기업입니다")
    assert ("경기", None) in _cities("경기도 화성시 소재") and ("경기", None) in _cities("경기 평택 공장")


def test_nearness_levels():
    pohang, gyeongsan, daegu = Place("경북", "포항"), Place("경북", "경산"), Place("대구", "대구")
    assert nearness(pohang, Place("경북", "포항")) == 3
    assert nearness(pohang, gyeongsan) == 2
    assert nearness(gyeongsan, daegu) == 1
    assert nearness(Place("제주", "제주"), daegu) == 0
    assert best_nearness([], [pohang]) == 0 and best_nearness([pohang], []) == 0


def _institute(city: str, sites: list) -> Institute:
    return Institute(
        id="x",
        name_ko="가",
        name_en="x",
        acronym="X",
        city=city,
        sites=sites,
        groups=["기초소재"],
        summary=".",
    )


def test_institute_seats_use_structured_sites_then_site_names():
    inst = _institute(
        "포항",
        [
            Site(name="본원", city="포항", region="경북"),
            Site(name="광양 연구 거점"),
            Site(name="해외 사무소"),
            Site(name="진해 실증단지", region="경상남도"),
        ],
    )
    hq, seats = institute_seats(inst)
    assert [(p.region, p.city) for p in hq] == [("경북", "포항")]
    assert [(p.region, p.city) for p in seats] == [
        ("경북", "포항"),
        ("경북", "포항"),
        ("전남", "광양"),
        ("경남", None),
    ]
    company = request_places("전남 광양 소재 제철 협력사입니다")
    assert best_nearness(company, hq) == 0 and best_nearness(company, seats) == 3


def test_region_matrix_rows_are_cumulative_and_zero_without_a_region():
    from matcher.region import REGION_FEATURES, region_matrix

    seats = [
        ([Place("경북", "포항")], [Place("경북", "포항"), Place("전남", "광양")]),
        ([Place("대전", "대전")], [Place("대전", "대전"), Place("경북", "경산")]),
        ([Place("제주", "제주")], [Place("제주", "제주")]),
    ]
    m = region_matrix([Place("경북", "포항")], seats)
    assert m.shape == (3, len(REGION_FEATURES))
    assert m[0].tolist() == [1, 1, 1, 1, 1]
    assert m[1].tolist() == [0, 0, 0, 0, 1]
    assert m[2].tolist() == [0, 0, 0, 0, 0]
    assert not region_matrix([], seats).any()

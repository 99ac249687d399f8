"""Where a company is and where institutes sit: places from Korean text, and how near two places are.

Real routing depends on the region (issue 16): companies in 포항 go to RIST, in 경산 to KOTMI, in 창원 to
KIMS and KERI. This module only recognises places and measures nearness; how much nearness counts is
learned by the re-ranker (`rerank.region_features`), never used as a filter.

Pure functions over a small gazetteer: the 17 시/도, the 시/군 and industrial complexes where
companies and institutes sit. Names that are also common words are guarded: 경기 (economy) only as
경기도 or before a city, 대전 not in 대전류 (high current), 부산 not in 부산물 (by-product), 화성 not in
화성암 (igneous rock), 진주 not in 진주빛 (pearl) …
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matcher.schema import Institute

PROVINCES: dict[str, tuple[str, ...]] = {
    "서울": ("서울특별시", "서울시", "서울"),
    "부산": ("부산광역시", "부산시", "부산"),
    "대구": ("대구광역시", "대구시", "대구"),
    "인천": ("인천광역시", "인천시", "인천"),
    "광주": ("광주광역시", "광주시", "광주"),
    "대전": ("대전광역시", "대전시", "대전"),
    "울산": ("울산광역시", "울산시", "울산"),
    "세종": ("세종특별자치시", "세종시", "세종"),
    "경기": ("경기도", "경기권", "경기남부", "경기북부"),
    "강원": ("강원특별자치도", "강원도", "강원"),
    "충북": ("충청북도", "충북"),
    "충남": ("충청남도", "충남"),
    "전북": ("전북특별자치도", "전라북도", "전북"),
    "전남": ("전라남도", "전남"),
    "경북": ("경상북도", "경북"),
    "경남": ("경상남도", "경남"),
    "제주": ("제주특별자치도", "제주도", "제주"),
}
"""시/도 short form → the ways it is written (longest first within a province)."""

METROPOLITAN = frozenset({"서울", "부산", "대구", "인천", "광주", "대전", "울산", "세종"})
"""시/도 that are one city: same 시/도 means same city."""

NEIGHBOURS: dict[str, frozenset[str]] = {
    k: frozenset(v)
    for k, v in {
        "서울": ("경기", "인천"),
        "인천": ("서울", "경기"),
        "경기": ("서울", "인천", "강원", "충북", "충남"),
        "강원": ("경기", "충북", "경북"),
        "충북": ("경기", "강원", "경북", "대전", "세종", "충남", "전북"),
        "충남": ("경기", "충북", "세종", "대전", "전북"),
        "대전": ("세종", "충남", "충북"),
        "세종": ("대전", "충남", "충북"),
        "전북": ("충남", "충북", "경북", "경남", "전남"),
        "전남": ("전북", "광주", "경남"),
        "광주": ("전남",),
        "경북": ("강원", "충북", "전북", "경남", "대구", "울산"),
        "대구": ("경북", "경남"),
        "울산": ("경북", "경남", "부산"),
        "부산": ("경남", "울산"),
        "경남": ("부산", "울산", "대구", "경북", "전북", "전남"),
        "제주": (),
    }.items()
}
"""시/도 sharing a land border (a metropolitan city neighbours the province around it)."""

CITIES: dict[str, str] = {
    # 경기
    "수원": "경기", "광교": "경기:수원", "성남": "경기", "판교": "경기:성남", "안산": "경기",
    "반월": "경기:안산", "시흥": "경기", "시화": "경기:시흥", "화성": "경기", "평택": "경기",
    "용인": "경기", "기흥": "경기:용인", "이천": "경기", "의왕": "경기", "군포": "경기", "과천": "경기",
    "양주": "경기", "안양": "경기", "부천": "경기", "김포": "경기", "파주": "경기", "고양": "경기",
    "오산": "경기", "안성": "경기", "포천": "경기", "의정부": "경기",
    # 인천, 서울, 부산, 대구, 대전, 광주, 울산 (districts and complexes inside a metropolitan city)
    "송도": "인천:인천", "남동공단": "인천:인천", "남동산단": "인천:인천", "남동국가산업단지": "인천:인천",
    "상암": "서울:서울", "홍릉": "서울:서울", "구로": "서울:서울", "가산디지털": "서울:서울",
    "기장": "부산:부산", "녹산": "부산:부산", "명지": "부산:부산", "사상공단": "부산:부산",
    "성서": "대구:대구", "달서": "대구:대구", "달성": "대구:대구", "비산염색": "대구:대구",
    "염색산업단지": "대구:대구", "대구염색": "대구:대구", "테크노폴리스": "대구:대구",
    "대덕": "대전:대전", "유성": "대전:대전",
    "하남산단": "광주:광주", "첨단산단": "광주:광주", "진곡": "광주:광주",
    "온산": "울산:울산", "미포": "울산:울산",
    # 강원
    "강릉": "강원", "원주": "강원", "춘천": "강원", "영월": "강원", "삼척": "강원", "동해시": "강원:동해",
    "철원": "강원",
    # 충북, 충남
    "청주": "충북", "오송": "충북:청주", "오창": "충북:청주", "충주": "충북", "음성": "충북",
    "진천": "충북", "제천": "충북",
    "천안": "충남", "아산": "충남", "당진": "충남", "서산": "충남", "논산": "충남", "공주": "충남",
    "보령": "충남", "예산": "충남", "계룡": "충남",
    # 전북, 전남
    "전주": "전북", "군산": "전북", "익산": "전북", "김제": "전북", "정읍": "전북", "완주": "전북",
    "새만금": "전북",
    "여수": "전남", "광양": "전남", "순천": "전남", "목포": "전남", "나주": "전남", "화순": "전남",
    "함평": "전남", "영암": "전남", "대불": "전남:영암", "장성": "전남",
    # 경북, 경남
    "포항": "경북", "경산": "경북", "구미": "경북", "경주": "경북", "안동": "경북", "영천": "경북",
    "김천": "경북", "칠곡": "경북", "상주": "경북", "영주": "경북",
    "창원": "경남", "마산": "경남:창원", "진해": "경남:창원", "진주": "경남", "김해": "경남",
    "거제": "경남", "사천": "경남", "양산": "경남", "통영": "경남", "밀양": "경남", "함안": "경남",
    # 제주
    "서귀포": "제주",
}  # fmt: skip
"""Place → "시/도" (the place is a city) or "시/도:city" (the place lies in that city)."""

_GUARD_AFTER = {
    "대전": "류력압",
    "부산": "물",
    "화성": "암",
    "진주": "빛알조",
    "구미": "호",
    "광주": "리",
    "성서": "적",
    "달성": "률하도",
    "양주": "잔병",
    "세종": "대",
    "경주": "마행",
    "공주": "님",
    "영주": "권",
    "상주": "인하재기",
    "대덕": "분",
    "온산": "도",
    "명지": "대",
    "진천": "동",
}
"""A place directly followed by one of these syllables is another word (대전류, 부산물, 화성암 …)."""

_HANGUL = "가-힣"


@dataclass(frozen=True)
class Place:
    """A recognised place: its 시/도 (short form) and, when known, its city (시/군, or the metropolis)."""

    region: str
    city: str | None = None
    name: str = ""
    """The words matched in the text."""


def _place_of(name: str) -> Place:
    if name in PROVINCES:
        return Place(name, name if name in METROPOLITAN else None, name)
    target = CITIES[name]
    region, _, city = target.partition(":")
    return Place(region, city or name, name)


@lru_cache(maxsize=1)
def _pattern() -> tuple[re.Pattern[str], dict[str, str]]:
    """One alternation of every written form, longest first; group `w` is the form, mapped to its key."""
    forms: dict[str, str] = {}
    for key, written in PROVINCES.items():
        for w in written:
            forms[w] = key
    for key in CITIES:
        forms.setdefault(key, key)
        if not key.endswith(("시", "군", "공단", "산단", "단지")):
            forms.setdefault(f"{key}시", key)
    forms["경기 "] = "경기"  # 경기 alone is also "the economy": only as a region before a place, see below
    alternation = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True) if f != "경기 ")
    pattern = re.compile(rf"(?<![{_HANGUL}])(?P<w>{alternation})")
    return pattern, forms


def places_in(text: str | None) -> list[Place]:
    """Every place named in the text, in order of first mention, without repeats.

    A place must start a word (not 포항 inside 신포항? — it must follow a non-Hangul character) and must
    not be the start of a longer common word (`_GUARD_AFTER`). 경기 counts only as 경기도/경기권 or
    directly before a recognised city (경기 안산, 경기안산).
    """
    if not text:
        return []
    pattern, forms = _pattern()
    hits: list[tuple[int, Place]] = []
    for m in pattern.finditer(text):
        word = m.group("w")
        key = forms[word]
        following = text[m.end() : m.end() + 1]
        if word == key and following and following in _GUARD_AFTER.get(key, ""):
            continue
        hits.append((m.start(), _place_of(key)))
    for m in re.finditer(rf"(?<![{_HANGUL}])경기\s?(?=[{_HANGUL}])", text):
        rest = places_in(text[m.end() : m.end() + 6])
        if rest and rest[0].region == "경기":
            hits.append((m.start(), Place("경기", None, "경기")))
    found: list[Place] = []
    seen: set[tuple[str, str | None]] = set()
    for _, place in sorted(hits, key=lambda h: h[0]):
        if (place.region, place.city) not in seen:
            seen.add((place.region, place.city))
            found.append(place)
    return found


def request_places(text: str, region: str | None = None) -> list[Place]:
    """The company's places: the `region` field first (the company said so), then the text."""
    out = places_in(region)
    known = {(p.region, p.city) for p in out}
    return out + [p for p in places_in(text) if (p.region, p.city) not in known]


def nearness(a: Place, b: Place) -> int:
    """3 same city, 2 same 시/도, 1 neighbouring 시/도, 0 otherwise."""
    if a.city and b.city and a.city == b.city:
        return 3
    if a.region == b.region:
        return 2
    if b.region in NEIGHBOURS.get(a.region, frozenset()):
        return 1
    return 0


def best_nearness(company: Sequence[Place], seats: Iterable[Place]) -> int:
    """The nearest any of the company's places gets to any of the seats (0 when either is unknown)."""
    seats = list(seats)
    return max((nearness(c, s) for c in company for s in seats), default=0)


def place_of_site(name: str, city: str | None = None, region: str | None = None) -> Place | None:
    """A seat as a `Place`: its structured city/region when the catalog has them, else read from its name."""
    if city or region:
        from_city = places_in(city)
        if not region and from_city:
            region = from_city[0].region
        if region:
            key = next((k for k, forms in PROVINCES.items() if region in forms or region == k), region)
            return Place(key, city or (key if key in METROPOLITAN else None), name)
    found = places_in(name)
    return found[0] if found else None


def institute_seats(institute: Institute) -> tuple[list[Place], list[Place]]:
    """(head office, every seat) of an institute. The head office is `Institute.city`; the seats are its
    `sites` (structured city/region where the catalog gives them, else read from the site's name)."""
    hq = [p for p in (place_of_site(institute.city, city=institute.city),) if p]
    sites = [place_of_site(s.name, s.city, s.region) for s in institute.sites]
    return hq, hq + [p for p in sites if p]


REGION_FEATURES = ("hq_city", "hq_province", "hq_neighbour", "site_city", "site_province")
"""Per institute: its head office is in the company's city / 시/도 / a neighbouring 시/도; any of its
seats is in the company's city / 시/도. Cumulative (a same-city head office sets all three hq_*)."""


def region_matrix(company: Sequence[Place], seats: Sequence[tuple[list[Place], list[Place]]]) -> np.ndarray:
    """`(n_institutes, len(REGION_FEATURES))` 0/1 rows; all zero when the company's region is unknown.

    Args:
        company: `request_places(...)` of the request.
        seats: `institute_seats(...)` of every institute, in catalog order.
    """
    out = np.zeros((len(seats), len(REGION_FEATURES)), dtype=np.float64)
    if not company:
        return out
    for i, (hq, every) in enumerate(seats):
        head, anywhere = best_nearness(company, hq), best_nearness(company, every)
        out[i] = (head >= 3, head >= 2, head >= 1, anywhere >= 3, anywhere >= 2)
    return out


def catalog_seats(institutes: Sequence[Institute]) -> list[tuple[list[Place], list[Place]]]:
    """`institute_seats` of every institute, in catalog order (computed once per matcher)."""
    return [institute_seats(inst) for inst in institutes]


def request_region(
    text: str, region: str | None, seats: Sequence[tuple[list[Place], list[Place]]]
) -> np.ndarray:
    """The region feature rows of one request: its places (field, then text) against every seat."""
    return region_matrix(request_places(text, region), seats)

"""Profile and programme records are retrieval units: indexed, counted per kind, shown as evidence."""

from __future__ import annotations

import shutil

import numpy as np

from matcher.catalog import load_catalog
from matcher.datasets import GoldRequest
from matcher.engine import Matcher
from matcher.learning.reranker import collect
from matcher.rerank import FEATURE_NAMES
from matcher.schema import LabeledRequest
from tests.conftest import FIXTURE_CATALOG, fast_config

PROFILE = """
  - id: kicet-p01
    kind: profile
    title: 세라믹 산업 기술지원 역할
    description: >-
      도자기 공방과 세라믹 중소기업의 원료 배합, 소성 가마 운영, 유약 개발을 현장 방문으로 자문하는 지역 거점 역할.
    keywords: [도자기, 공방, 유약, 가마, 현장 자문]
  - id: kicet-g01
    kind: programme
    title: 도자 공방 기술닥터 사업
    description: 도자기 공방에 전문가가 찾아가 소성 가마와 유약 문제를 진단하는 지원 사업.
    keywords: [기술닥터, 도자기 공방, 가마]
"""


def test_profile_and_programme_records_are_indexed_counted_and_shown(tmp_path):
    catalog_dir = tmp_path / "catalog"
    shutil.copytree(FIXTURE_CATALOG, catalog_dir)
    path = catalog_dir / "kicet.yaml"
    path.write_text(path.read_text(encoding="utf-8").rstrip() + "\n" + PROFILE, encoding="utf-8")
    catalog = load_catalog(catalog_dir)
    assert {c.kind.value for c in catalog.records_of("kicet")} >= {"profile", "programme"}

    matcher = Matcher.from_config(fast_config(tmp_path, catalog_dir=str(catalog_dir)))
    text = "작은 도자기 공방입니다. 가마 소성 후 유약이 들뜨는데 현장에 와서 봐 줄 전문가가 있을까요?"
    result = matcher.match(text)
    assert result.recommendations[0].institutes == ("kicet",)
    kinds = {e.kind for e in result.recommendations[0].evidence}
    assert kinds & {"profile", "programme"}, kinds

    gold = GoldRequest(LabeledRequest(id="p", text=text, institutes=["kicet"]), ("kicet",))
    rows = collect(matcher, [gold]).features[0]
    kicet = catalog.institute_ids.index("kicet")
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    assert rows[kicet, col["profile_max"]] > 0 and rows[kicet, col["programme_max"]] > 0
    assert rows[kicet, col["profile_top"]] + rows[kicet, col["programme_top"]] > 0
    others = np.delete(rows[:, col["profile_max"]], kicet)
    assert not others.any()  # no other institute has profile records

"""The shipped catalog and request sets meet the data card's promises."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

import pytest

from matcher.catalog import load_catalog
from matcher.datasets import load_labeled
from matcher.korean import normalize_text
from tests.conftest import ROOT

CATALOG = ROOT / "data" / "institutes"
TRAIN = ROOT / "data" / "requests" / "train.jsonl"
DEV = ROOT / "data" / "requests" / "dev.jsonl"
MINIMUM = {"staff": 15, "technology": 20, "equipment": 10, "profile": 1, "programme": 1}
"""Breadth floor per institute after the source-grounding pass (issue 15): generic instrument clones
were removed, so equipment went down where nothing institute-specific could be said."""
MINIMUM_RECORDS = 60


@lru_cache(maxsize=1)
def catalog():
    return load_catalog(CATALOG)


def test_catalog_size_and_per_kind_minimums():
    cat = catalog()
    assert len(cat.institutes) >= 40
    assert len(cat.capabilities) >= 3300
    for inst, counts in cat.counts().items():
        for kind, minimum in MINIMUM.items():
            assert counts[kind] >= minimum, f"{inst} has {counts[kind]} {kind} records (< {minimum})"
        assert sum(counts.values()) >= MINIMUM_RECORDS, inst


def test_catalog_covers_every_field_group():
    groups = {g for inst in catalog().institutes for g in inst.groups}
    assert groups == {"기초소재", "응용소재", "전자부품", "모듈·부품", "시스템·장비", "바이오·의료", "섬유"}


@pytest.mark.parametrize("path,minimum_n,minimum_per_institute", [(TRAIN, 600, 10), (DEV, 200, 3)])
def test_request_sets(path, minimum_n, minimum_per_institute):
    golds = load_labeled(path, catalog())  # schema and label resolution (strict: unknown labels fail)
    assert len(golds) >= minimum_n
    counts = Counter(g for gold in golds for g in gold.gold)
    for inst in catalog().institute_ids:
        assert counts[inst] >= minimum_per_institute, f"{inst} is gold {counts[inst]} times in {path.name}"
    multi = sum(len(g.gold) >= 2 for g in golds)
    assert multi / len(golds) >= 0.25
    assert sum(not g.gold for g in golds) >= 5  # requests that fit no institute, for abstention
    assert len({normalize_text(g.request.text) for g in golds}) == len(golds)


def test_no_overlap_between_train_and_dev():
    train = {normalize_text(g.request.text) for g in load_labeled(TRAIN, catalog())}
    dev = {normalize_text(g.request.text) for g in load_labeled(DEV, catalog())}
    assert not train & dev


def test_requests_do_not_repeat_catalog_titles():
    """Requests describe problems, not capabilities: no descriptive record title appears verbatim."""
    titles = {normalize_text(c.title) for c in catalog().capabilities}
    titles = {t for t in titles if len(t) >= 8}
    for path in (TRAIN, DEV):
        for gold in load_labeled(path, catalog()):
            text = normalize_text(gold.request.text)
            leaked = [t for t in titles if t in text]
            assert not leaked, f"{gold.id} repeats catalog title(s) {leaked}"

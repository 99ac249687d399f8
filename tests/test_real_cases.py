"""The real-case split: regenerated exactly from its own rows, disjoint, stratified, labels resolvable."""

from __future__ import annotations

from collections import Counter

from matcher.cases import dev_count, read_jsonl, split, to_labeled
from matcher.datasets import load_labeled
from matcher.korean import normalize_text
from tests.conftest import ROOT
from tests.test_data import DEV, TRAIN, catalog

REAL_TRAIN = ROOT / "data" / "requests" / "real-train.jsonl"
REAL_DEV = ROOT / "data" / "requests" / "real-dev.jsonl"


def _rows() -> tuple[list[dict], list[dict]]:
    return read_jsonl(REAL_TRAIN), read_jsonl(REAL_DEV)


def test_split_is_deterministic_and_reproduces_the_shipped_files():
    train, dev = _rows()
    union = sorted(train + dev, key=lambda r: r["id"])
    again_train, again_dev = split(union)
    assert {r["id"] for r in again_train} == {r["id"] for r in train}
    assert {r["id"] for r in again_dev} == {r["id"] for r in dev}
    assert split(list(reversed(union)))[1] == list(reversed(again_dev))  # input order does not matter


def test_halves_are_disjoint_by_id_and_text():
    train, dev = _rows()
    assert not {r["id"] for r in train} & {r["id"] for r in dev}
    assert not {normalize_text(r["text"]) for r in train} & {normalize_text(r["text"]) for r in dev}


def test_split_is_stratified_by_institute():
    train, dev = _rows()
    n = Counter(r["institutes"][0] for r in train + dev)
    in_dev = Counter(r["institutes"][0] for r in dev)
    for inst, count in n.items():
        assert in_dev[inst] == dev_count(count), inst
    assert 0.35 <= len(dev) / (len(train) + len(dev)) <= 0.45


def test_dev_count_rounds_half_up_and_keeps_singletons_in_train():
    assert [dev_count(n) for n in (1, 2, 3, 4, 5, 10, 22)] == [0, 1, 1, 2, 2, 4, 9]


def test_real_sets_load_with_every_label_resolved_and_no_synthetic_overlap():
    synthetic = {normalize_text(g.request.text) for p in (TRAIN, DEV) for g in load_labeled(p, catalog())}
    for path in (REAL_TRAIN, REAL_DEV):
        golds = load_labeled(path, catalog())  # strict: an unresolved label fails
        assert all(g.gold for g in golds)
        assert not {normalize_text(g.request.text) for g in golds} & synthetic


def test_to_labeled_keeps_source_and_renames_fields():
    case = {
        "id": "PA-9",
        "request": "도금 불량",
        "institutions": ["한국생산기술연구원"],
        "region": None,
        "company": "가나",
        "source": "https://example.org (2020)",
        "notes": "",
        "year": 2020,
    }
    assert to_labeled(case) == {
        "id": "PA-9",
        "text": "도금 불량",
        "institutes": ["한국생산기술연구원"],
        "company": "가나",
        "source": "https://example.org (2020)",
        "year": 2020,
    }

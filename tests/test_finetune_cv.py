"""bench/finetune_cv.py: grouped folds that never split a company, the seeded synthetic sample, the
fold summary, and its `--smoke` run (a real one-step fine-tune per fold on the fixture catalog)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import FIXTURE_REQUESTS, ROOT


@pytest.fixture(scope="module")
def cv():
    spec = importlib.util.spec_from_file_location("bench_finetune_cv", ROOT / "bench" / "finetune_cv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(n: int) -> list[dict]:
    """Requests in pairs that share a company; one has no gold, one no company (its id groups it)."""
    rows = [{"id": f"r{i}", "institutes": ["kims"], "company": f"c{i // 2}"} for i in range(n)]
    rows[5]["institutes"] = []
    rows[7].pop("company")
    return rows


def test_folds_partition_gold_requests_and_keep_companies_together(cv):
    rows = _rows(20)
    folds = cv.grouped_folds(rows, 3, seed=13)
    held = [i for f in folds for i in f]
    assert sorted(held) == [i for i in range(20) if i != 5]  # each gold request held out exactly once
    assert len(folds) == 3 and all(folds)
    where = {i: k for k, f in enumerate(folds) for i in f}
    for i in held:
        for j in held:
            if rows[i].get("company") and rows[i].get("company") == rows[j].get("company"):
                assert where[i] == where[j], (i, j)
    assert folds == cv.grouped_folds(rows, 3, seed=13)  # deterministic
    assert folds != cv.grouped_folds(rows, 3, seed=14)  # the seed shuffles groups


def test_real_train_folds_are_disjoint_by_company(cv):
    real = [r for r, _ in cv.read_rows(cv.REAL_TRAIN)]
    folds = cv.grouped_folds(real, 3, seed=13)
    companies = [{real[i]["company"] for i in f} for f in folds]
    assert sum(len(f) for f in folds) == sum(1 for r in real if r["institutes"])
    assert not (companies[0] & companies[1]) and not (companies[0] & companies[2])
    assert not (companies[1] & companies[2])


def test_synthetic_sample_is_seeded_and_skips_no_fit(cv):
    rows = cv.read_rows(FIXTURE_REQUESTS)
    sample = cv.synthetic_sample(rows, 4, seed=1)
    assert len(sample) == 4 and sample == cv.synthetic_sample(rows, 4, seed=1)
    by_raw = {raw: row for row, raw in rows}
    assert all(by_raw[raw]["institutes"] for raw in sample)
    assert len(cv.synthetic_sample(rows, 999, seed=1)) == sum(1 for r, _ in rows if r["institutes"])


def test_summary_weights_folds_by_size_and_counts_gains(cv):
    rows = [
        {
            "n": 10,
            "base": {"mrr": 0.5, "hit@1": 0.4, "hit@3": 0.6},
            "finetuned": {"mrr": 0.6, "hit@1": 0.4, "hit@3": 0.7},
        },
        {
            "n": 30,
            "base": {"mrr": 0.7, "hit@1": 0.6, "hit@3": 0.8},
            "finetuned": {"mrr": 0.66, "hit@1": 0.6, "hit@3": 0.9},
        },
    ]
    mean = cv.summarize(rows)
    assert mean["mrr"]["base"] == pytest.approx(0.65)
    assert mean["mrr"]["gain"] == pytest.approx((0.1 * 10 - 0.04 * 30) / 40)
    assert mean["mrr"]["folds_gained"] == 1 and mean["hit@1"]["folds_gained"] == 0
    assert mean["hit@3"]["folds_gained"] == 2
    assert "mrr -0.005 (1/2 folds)" in cv.table(
        [{**r, "fold": i, "pairs": 1, "steps": 1, "train_s": 1} for i, r in enumerate(rows)], mean
    )


def _smoke(*extra: str) -> str:
    run = subprocess.run(
        [sys.executable, "bench/finetune_cv.py", "--smoke", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "smoke ok" in run.stdout
    return run.stdout


@pytest.mark.slow
def test_smoke_run():
    assert "gain mrr" in _smoke()


@pytest.mark.slow
def test_smoke_final_saves_a_model_with_card_and_onnx(tmp_path):
    out = tmp_path / "ft"
    _smoke("--final", str(out))
    card = json.loads((out / "model_card_data.json").read_text())
    assert card["data"]["requests_with_gold"] == 11 and card["training"]["steps"] == 1
    assert (out / "onnx" / "model-int8.onnx").is_file() and (out / "modules.json").is_file()

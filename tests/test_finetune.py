"""Encoder fine-tuning: pair mining, batching, and a one-step run that saves a loadable model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from matcher.cli.app import app
from matcher.datasets import load_labeled
from matcher.encoders.hashing import HashingEncoder
from matcher.encoders.registry import ensure_default_model
from matcher.learning.encoder import TrainParams, make_batches, mine_pairs, train
from tests.conftest import FIXTURE_REQUESTS, ROOT, fast_config

runner = CliRunner()


@pytest.fixture(scope="module")
def e5_path(tmp_path_factory) -> Path:
    """The converted default e5 (the repo's if installed, else converted here in seconds)."""
    installed = ROOT / "models" / "e5-small"
    if (installed / "modules.json").is_file():
        return installed
    return ensure_default_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def pairs(fixture_catalog):
    golds = load_labeled(FIXTURE_REQUESTS, fixture_catalog)
    records = list(fixture_catalog.capabilities)
    encoder = HashingEncoder()
    vectors = encoder.encode([r.text() for r in records], kind="passage")
    return golds, mine_pairs(golds, records, vectors, encoder, positives_per_institute=2, max_pairs=100)


def test_pairs_have_gold_positives_and_other_institute_negatives(pairs, fixture_catalog):
    golds, mined = pairs
    by_id = {c.id: c for c in fixture_catalog.capabilities}
    gold = {g.id: set(g.gold) for g in golds}
    assert mined
    for p in mined:
        assert by_id[p.positive_id].institute == p.institute and p.institute in gold[p.request_id]
        assert by_id[p.negative_id].institute not in gold[p.request_id]
        assert p.positive == by_id[p.positive_id].text()
    assert len({p.request_id for p in mined}) == sum(1 for g in golds if g.gold)  # no-fit requests skip


def test_max_pairs_spreads_over_requests(fixture_catalog, pairs):
    golds, _ = pairs
    records = list(fixture_catalog.capabilities)
    encoder = HashingEncoder()
    vectors = encoder.encode([r.text() for r in records], kind="passage")
    few = mine_pairs(golds, records, vectors, encoder, max_pairs=5, seed=1)
    assert len(few) == 5 and len({p.request_id for p in few}) == 5
    assert few == mine_pairs(golds, records, vectors, encoder, max_pairs=5, seed=1)  # seeded


def test_batches_never_repeat_a_request_or_institute(pairs):
    _, mined = pairs
    batches = make_batches(mined, 4, seed=3)
    assert sorted(p.positive_id + p.request_id for b in batches for p in b) == sorted(
        p.positive_id + p.request_id for p in mined
    )
    for batch in batches:
        assert len(batch) <= 4
        assert len({p.request_id for p in batch}) == len(batch)
        assert len({p.institute for p in batch}) == len(batch)


@pytest.mark.slow
def test_one_step_produces_a_loadable_model(e5_path, pairs, tmp_path):
    from sentence_transformers import SentenceTransformer

    from matcher.encoders.st import SentenceTransformerEncoder

    _, mined = pairs
    model = SentenceTransformer(str(e5_path), device="cpu", local_files_only=True)
    before = model.encode(["기공 불량"], prompt="query: ")
    params = TrainParams(max_pairs=4, batch_size=4, max_seq_length=64, time_budget_s=0.01, learning_rate=1e-4)
    outcome = train(model, mined[:8], params)
    assert outcome.steps == 1 and outcome.stopped_by_budget and outcome.steps_planned >= 2
    model.save(str(tmp_path / "ft"), create_model_card=False)
    encoder = SentenceTransformerEncoder(tmp_path / "ft")
    vectors = encoder.encode(["기공 불량"], kind="query")
    assert vectors.shape == (1, 384) and np.isclose(np.linalg.norm(vectors), 1.0, atol=1e-3)
    assert encoder._prompt == {"query": "query: ", "passage": "passage: "}
    assert not np.allclose(vectors, before / np.linalg.norm(before), atol=1e-6)


@pytest.mark.slow
def test_cli_train_encoder_writes_a_card_and_serves(e5_path, tmp_path):
    cfg = fast_config(
        tmp_path, e5_model=str(e5_path), retrievers=("e5", "bm25"), index_dir=str(tmp_path / "i")
    )
    cfg.save(tmp_path / "c.toml")
    out = tmp_path / "models" / "ft"
    opts = ["--out", str(out), "--max-pairs", "4", "--batch-size", "4", "--time-budget", "0.01", "--json"]
    result = runner.invoke(
        app,
        ["train", "encoder", "--train", str(FIXTURE_REQUESTS), "-C", str(tmp_path / "c.toml"), *opts],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["steps"] == 1 and summary["stopped_by_time_budget"] and summary["dev"] is None
    card = json.loads((out / "model_card_data.json").read_text())
    assert card["seed"] == 13 and card["data"]["pairs"] == 4 and card["parameters"]["max_pairs"] == 4
    assert card["parameters"]["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert "MultipleNegativesRankingLoss" in (out / "README.md").read_text()
    # a config naming the new model rebuilds the index with the new encoder id and matches
    cfg.replace(e5_model=str(out)).save(tmp_path / "ft.toml")
    matched = runner.invoke(app, ["match", "-C", str(tmp_path / "ft.toml"), "--json", "SiC 파워모듈 크랙"])
    assert matched.exit_code == 0, matched.output
    manifest = json.loads((tmp_path / "i" / "manifest.json").read_text())
    assert manifest["dense"]["e5"]["encoder_id"].startswith("st:ft@")


def test_cli_refuses_to_train_on_dev(tmp_path):
    result = runner.invoke(
        app, ["train", "encoder", "--train", str(FIXTURE_REQUESTS), "--dev", str(FIXTURE_REQUESTS)]
    )
    assert result.exit_code == 2 and "dev" in result.output

"""`matcher evaluate` and `matcher compare` on the fixture data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from matcher.cli.app import app
from tests.conftest import FIXTURE_REQUESTS, fast_config

runner = CliRunner()


def test_evaluate_json_and_outputs(fast_config_file, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        ["evaluate", "-d", str(FIXTURE_REQUESTS), "-C", str(fast_config_file), "--json", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n"] == 12 and data["n_empty"] == 1 and data["n_multi"] == 2
    for key in (
        "hit@1",
        "hit@3",
        "hit@5",
        "recall@3",
        "recall@5",
        "mrr",
        "ndcg@5",
        "full_cover@3",
        "jaccard@1",
        "abstain_precision",
        "abstain_recall",
    ):
        assert key in data["metrics"]
    # The summary's means are the per-request metrics recomputed from what was ranked (results.jsonl).
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ranked = [r for r in rows if r["gold"]]
    hit1 = np.mean([r["ranked"][:1] != [] and r["ranked"][0] in r["gold"] for r in ranked])
    rr = [next((1 / k for k, i in enumerate(r["ranked"], 1) if i in r["gold"]), 0.0) for r in ranked]
    assert data["metrics"]["hit@1"] == pytest.approx(hit1)
    assert data["metrics"]["mrr"] == pytest.approx(np.mean(rr))
    assert data["metrics"]["mrr"] < 1.0  # the fixture has requests the cheap encoder ranks second
    assert data["config"]["top"] == 10  # evaluation ranks 10 deep without --top
    assert set(data["per_institute"]) == {"kims", "katech", "keti", "kicet", "ktl"}
    assert {"ci95", "config", "latency_ms", "confusions"} <= set(data)
    for name in ("report.md", "results.jsonl", "config.toml", "qrels.txt", "run.txt", "summary.json"):
        assert (out / name).is_file(), name
    assert len((out / "results.jsonl").read_text().splitlines()) == 12

    same = runner.invoke(app, ["compare", str(out), str(out), "--json"])
    assert same.exit_code == 0
    assert json.loads(same.stdout)["metrics"]["mrr"]["diff"] == 0.0


def test_unknown_gold_label_is_reported_and_counted_as_miss(fast_config_file, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(
        '{"id": "a", "text": "차량 ECU EMC 시험", "institutes": ["katech", "화성연구소"]}\n', encoding="utf-8"
    )
    result = runner.invoke(app, ["evaluate", "-d", str(data), "-C", str(fast_config_file), "--json"])
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["unknown_labels"] == ["화성연구소"]
    assert summary["metrics"]["recall@5"] == 0.5


def test_bad_dataset_line_is_input_error(fast_config_file, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "a", "text": "ok", "institutes": []}\n{"id": "b"}\nnot json\n', encoding="utf-8")
    result = runner.invoke(app, ["evaluate", "-d", str(data), "-C", str(fast_config_file)])
    assert result.exit_code == 2
    assert ":2" in result.output and "text" in result.output and ":3" in result.output


def test_set_overrides_a_knob_and_rejects_garbage(fast_config_file):
    args = ["evaluate", "-d", str(FIXTURE_REQUESTS), "-C", str(fast_config_file), "--json", "--batched"]
    result = runner.invoke(app, [*args, "--set", "joint=false", "--set", "rrf_k=30"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)["config"]
    assert config["joint"] is False and config["rrf_k"] == 30
    assert json.loads(result.stdout)["metrics"]["full_cover@3"] == 0.0
    bad = runner.invoke(app, [*args, "--set", "rrf_k"])
    assert bad.exit_code == 2 and "key=value" in bad.output
    unknown = runner.invoke(app, [*args, "--set", "nonsense=1"])
    assert unknown.exit_code == 2 and "nonsense" in unknown.output


def test_tune_fixes_a_wrong_default_knob_and_writes_a_loadable_config(tmp_path):
    from matcher.config import load_config

    wrong = tmp_path / "wrong.toml"
    fast_config(tmp_path, retriever_weights=(1.0, 0.0)).save(wrong)  # BM25 muted: the default is wrong
    out = tmp_path / "tune"
    args = ["tune", "-d", str(FIXTURE_REQUESTS), "-C", str(wrong), "--trials", "4", "--folds", "2"]
    result = runner.invoke(app, [*args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    stage1 = report["stage1"]
    assert stage1["trials"] == 5  # the default plus 4 sampled
    assert stage1["mrr_in_sample"] > stage1["mrr_default"] + 0.1
    assert stage1["best_changes"]["retriever_weights"][1] > 0
    assert {"jaccard@1_all", "hit@1_single", "padded_singles"} <= set(report["stage2"])
    tuned = load_config(out / "tuned.toml")
    assert tuned.name == "tuned" and tuned.retriever_weights[1] > 0 and tuned.abstain_threshold >= 0


def test_evaluate_several_sets_side_by_side_and_compare_per_set(fast_config_file, tmp_path):
    other = tmp_path / "other.jsonl"
    lines = FIXTURE_REQUESTS.read_text(encoding="utf-8").splitlines()[:5]
    other.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "runs"
    args = [
        "evaluate",
        "-d",
        str(FIXTURE_REQUESTS),
        "-d",
        str(other),
        "-C",
        str(fast_config_file),
        "--batched",
    ]
    result = runner.invoke(app, [*args, "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    sets = json.loads(result.stdout)["datasets"]
    assert set(sets) == {FIXTURE_REQUESTS.stem, "other"}
    assert sets["other"]["n"] == 5 and sets[FIXTURE_REQUESTS.stem]["n"] == 12
    assert "team_first" in sets["other"]["ci95"] and "mrr" in sets["other"]["ci95"]
    assert (out / "other" / "results.jsonl").is_file() and (
        out / FIXTURE_REQUESTS.stem / "report.md"
    ).is_file()

    table = runner.invoke(app, [*args, "--query-cache"])  # vectors stored by the first run: same numbers
    assert table.exit_code == 0 and "other" in table.output and "95% CI" in table.output
    cached = runner.invoke(app, [*args, "--query-cache", "--json"])
    assert json.loads(cached.stdout)["datasets"]["other"]["metrics"] == sets["other"]["metrics"]

    same = runner.invoke(app, ["compare", str(out), str(out), "--json"])
    assert same.exit_code == 0, same.output
    compared = json.loads(same.stdout)["sets"]
    assert compared["other"]["n_shared"] == 5 and compared["other"]["metrics"]["mrr"]["diff"] == 0.0
    mixed = runner.invoke(app, ["compare", str(out), str(out / "other")])
    assert mixed.exit_code == 2

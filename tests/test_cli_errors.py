"""One error path: every command's missing-state path exits 3 with one clear line and no traceback,
JSON under --json; input errors exit 2 the same way; --set works wherever a config is loaded."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from matcher.cli.app import app
from matcher.index_store import build_indexes
from tests.conftest import FIXTURE_REQUESTS, fast_config

runner = CliRunner()


@pytest.fixture
def missing_model(tmp_path):
    """A config whose e5 retriever names a model that is not installed (not the default name)."""
    path = tmp_path / "missing-model.toml"
    fast_config(
        tmp_path, retrievers=("e5", "bm25"), retriever_weights=(1.0, 1.0), e5_model="no-such-model"
    ).save(path)
    return path


def _commands(config: str, tmp) -> dict[str, list[str]]:
    requests = tmp / "requests.jsonl"
    requests.write_text(FIXTURE_REQUESTS.read_text(encoding="utf-8"), encoding="utf-8")
    return {
        "match": ["match", "-C", config, "기공 불량"],
        "batch": ["batch", str(requests), "--out", str(tmp / "out.jsonl"), "-C", config],
        "evaluate": ["evaluate", "-d", str(requests), "-C", config],
        "tune": ["tune", "-d", str(requests), "-C", config, "--out", str(tmp / "tune"), "--trials", "1"],
        "index build": ["index", "build", "-C", config],
        "train reranker": ["train", "reranker", "--train", str(requests), "-C", config],
        "train encoder": ["train", "encoder", "--train", str(requests), "-C", config, "-o", str(tmp / "ft")],
    }


@pytest.mark.parametrize(
    "command", ["match", "batch", "evaluate", "tune", "index build", "train reranker", "train encoder"]
)
def test_missing_model_is_exit_3_one_line_no_traceback(command, missing_model, tmp_path):
    args = _commands(str(missing_model), tmp_path)[command]
    result = runner.invoke(app, args)
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # nothing uncaught
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "no-such-model" in errors[0], result.stderr

    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["code"] == 3 and "no-such-model" in data["error"]


def test_index_info_without_an_index_is_exit_3_with_json(tmp_path):
    path = tmp_path / "c.toml"
    fast_config(tmp_path).save(path)
    result = runner.invoke(app, ["index", "info", "-C", str(path), "--json"])
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["code"] == 3 and "index build" in data["error"]


def test_index_info_staleness_is_the_librarys(tmp_path, fixture_catalog):
    """Built for bm25 only, asked about a config that also wants hashing: stale, with the reason."""
    bm25_only = fast_config(tmp_path, retrievers=("bm25",), retriever_weights=(1.0,))
    build_indexes(fixture_catalog, bm25_only)
    path = tmp_path / "c.toml"
    fast_config(tmp_path).save(path)
    data = json.loads(runner.invoke(app, ["index", "info", "-C", str(path), "--json"]).stdout)
    assert data["stale"] is True and data["stale_reasons"] == ["retriever 'hashing' is not in the index"]
    ok = runner.invoke(
        app,
        [
            "index",
            "info",
            "-C",
            str(path),
            "--set",
            'retrievers=["bm25"]',
            "--set",
            "retriever_weights=[1.0]",
        ],
    )
    assert ok.exit_code == 0 and "최신 상태" in ok.stdout


def test_fail_prints_json_under_json(fast_config_file):
    result = runner.invoke(app, ["match", "-C", str(fast_config_file), "--json", "   "])
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {"error": "요청 내용이 비어 있습니다 (empty request).", "code": 2}


def test_compare_missing_run_is_an_input_error_with_json(tmp_path):
    result = runner.invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    data = json.loads(result.stdout)
    assert data["code"] == 2 and data["problems"][0]["file"] == str(tmp_path / "a")


def test_set_overrides_on_every_command_that_loads_a_config(fast_config_file, tmp_path):
    bad = ["--set", "no_such_knob=1"]
    for args in (
        ["index", "build", "-C", str(fast_config_file)],
        ["index", "info", "-C", str(fast_config_file)],
        ["match", "-C", str(fast_config_file), "기공"],
        ["batch", str(FIXTURE_REQUESTS), "--out", str(tmp_path / "o.jsonl"), "-C", str(fast_config_file)],
        ["evaluate", "-d", str(FIXTURE_REQUESTS), "-C", str(fast_config_file)],
        ["tune", "-d", str(FIXTURE_REQUESTS), "-C", str(fast_config_file)],
        ["train", "reranker", "--train", str(FIXTURE_REQUESTS), "-C", str(fast_config_file)],
        [
            "feedback",
            "add",
            "-r",
            "x",
            "--text",
            "t",
            "--db",
            str(tmp_path / "f.db"),
            "-C",
            str(fast_config_file),
        ],
    ):
        result = runner.invoke(app, [*args, *bad, "--json"])
        assert result.exit_code == 2, (args, result.output)
        assert json.loads(result.stdout)["problems"][0]["field"] == "no_such_knob", args

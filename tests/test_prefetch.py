"""Cold one-shot matching: queries encoded in forked workers give the same result as in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import fast_config

from matcher import prefetch
from matcher.engine import Matcher
from matcher.schema import Request

TEXT = (
    "차량용 ECU의 EMC 시험에서 전도성 방출이 기준을 넘습니다. 세라믹 기판의 열충격 신뢰성도 평가해야 합니다."
)


@pytest.fixture
def cold(tmp_path):
    config = fast_config(tmp_path)
    Matcher.from_config(config)  # build and save the index; the test then loads it like a new process
    return config


def test_workers_encode_what_the_retrievers_would_and_the_match_is_identical(cold):
    request = Request(id="r", text=TEXT)
    workers = prefetch.start(cold, request)
    assert workers is not None
    encoded = workers.results()
    assert set(encoded) == {"hashing", "bm25"}
    matcher = Matcher.from_config(cold)
    queries = matcher.prepare([request]).queries
    assert len(queries) == 3  # the whole request and its two needs
    assert encoded["bm25"] == matcher.indexes.retrievers["bm25"].encode_queries(queries)
    np.testing.assert_array_equal(
        encoded["hashing"], matcher.indexes.retrievers["hashing"].encode_queries(queries)
    )
    with_workers, alone = matcher.match(request, encoded).to_dict(), matcher.match(request).to_dict()
    for result in (with_workers, alone):
        result.pop("latency_ms")
    assert json.dumps(with_workers, sort_keys=True) == json.dumps(alone, sort_keys=True)


def test_a_failing_worker_leaves_its_retriever_to_the_parent(cold, monkeypatch):
    from matcher.retrieval.lexical import BM25Retriever

    def broken(cls, name, config):
        raise RuntimeError("kiwi could not load")

    monkeypatch.setattr(BM25Retriever, "query_encoder", classmethod(broken))
    encoded = prefetch.start(cold, Request(id="r", text=TEXT)).results()
    assert set(encoded) == {"hashing"}
    result = Matcher.from_config(cold).match(Request(id="r", text=TEXT), encoded)
    assert result.recommendations


def test_no_workers_when_switched_off_on_one_core_or_off_linux(cold, monkeypatch):
    request = Request(id="r", text=TEXT)
    assert prefetch.start(cold.replace(prefetch_queries=False), request) is None
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert prefetch.start(cold, request) is None
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("sys.platform", "darwin")
    assert prefetch.start(cold, request) is None


def test_a_loaded_index_loads_its_encoder_only_when_it_encodes(cold):
    matcher = Matcher.from_config(cold)
    dense = matcher.indexes.retrievers["hashing"]
    assert dense._encoder is None  # not loaded yet
    dense.encode_queries(["세라믹 기판"])
    assert dense._encoder is not None and dense.encoder.id == dense.entry()["encoder_id"]


def test_encoded_queries_are_searched_instead_of_encoding_again(cold):
    matcher = Matcher.from_config(cold)
    queries = matcher.prepare([Request(id="r", text=TEXT)]).queries
    other = [["열충격", "세라믹"]] * len(queries)
    given = matcher.retrieve(queries, {"bm25": other})["bm25"]
    np.testing.assert_array_equal(
        given[1], matcher.indexes.retrievers["bm25"].search_encoded(other, given[1].shape[1])[1]
    )
    assert not np.array_equal(given[1], matcher.retrieve(queries)["bm25"][1])


def test_a_worker_forked_from_a_process_with_models_loaded_does_not_hang(cold):
    """The parent has used kiwi (and its worker threads) before forking: the child builds its own."""
    from matcher.korean import tokenize_many

    tokenize_many(["세라믹 기판 열충격", "전도성 방출 시험"])
    encoded = prefetch.start(cold, Request(id="r", text=TEXT)).results(timeout=30)
    assert set(encoded) == {"hashing", "bm25"}


def test_workers_yield_to_the_slowest_loading_encoder():
    from matcher.prefetch import YIELD_NICE, worker_niceness

    assert worker_niceness(["e5", "use", "bm25", "e5"]) == {"e5": YIELD_NICE, "use": YIELD_NICE, "bm25": 0}
    assert worker_niceness(["e5", "use"]) == {"e5": 0, "use": 0}  # nobody to yield to


def test_the_spare_started_first_encodes_the_slowest_retrievers_queries(cold):
    """`start_spare` (forked before the CLI loads) takes BM25's queries instead of a fresh worker."""
    request = Request(id="r", text=TEXT)
    prefetch.start_spare()
    spare_process = prefetch._spare[0]
    workers = prefetch.start(cold, request)
    assert prefetch._spare is None  # claimed
    assert workers._workers["bm25"][0] is spare_process
    assert workers._workers["hashing"][0] is not spare_process
    encoded = workers.results()
    matcher = Matcher.from_config(cold)
    queries = matcher.prepare([request]).queries
    assert encoded["bm25"] == matcher.indexes.retrievers["bm25"].encode_queries(queries)
    assert not spare_process.is_alive()


def test_an_unused_spare_exits(cold):
    prefetch.start_spare()
    spare_process = prefetch._spare[0]
    workers = prefetch.start(
        cold.replace(retrievers=("hashing",), retriever_weights=(1.0,)), Request(id="r", text=TEXT)
    )
    assert set(workers.results()) == {"hashing"}
    spare_process.join(timeout=30)
    assert not spare_process.is_alive() and prefetch._spare is None
    prefetch.start_spare()
    spare_process = prefetch._spare[0]
    assert prefetch.start(cold.replace(prefetch_queries=False), Request(id="r", text=TEXT)) is None
    spare_process.join(timeout=30)
    assert not spare_process.is_alive()


def test_a_one_shot_match_from_the_command_line_prints_the_in_process_result(cold, tmp_path):
    """Through `matcher.cli.entry.main`: the spare is forked first and the process ends by
    `quick_exit`, yet the JSON is whole and equal to the in-process match; errors keep their exit code."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    config_file = tmp_path / "cold.toml"
    cold.save(config_file)

    def cli(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run(
            [sys.executable, "-m", "matcher", "match", "--local", "-C", str(config_file), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )

    done = cli("--json", TEXT)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    want = Matcher.from_config(cold).match(Request(id="request", text=TEXT)).to_dict()
    for result in (got, want):
        result.pop("latency_ms")
    assert got == want
    empty = cli("--json", "   ")
    assert empty.returncode == 2 and json.loads(empty.stdout)["error"]

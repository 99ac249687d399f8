"""The query-vector cache: exact reuse, one encode per unseen text, and re-ranks after a catalog change."""

from __future__ import annotations

import json
import shutil

import numpy as np
from typer.testing import CliRunner

from matcher.cli.app import app
from matcher.encoders.hashing import HashingEncoder
from matcher.encoders.query_cache import CachingEncoder, QueryVectorStore, text_key
from matcher.engine import Matcher
from tests.conftest import FIXTURE_CATALOG, FIXTURE_REQUESTS, fast_config
from tests.test_batch import read_jsonl, run, without_latency, write_jsonl

REQUESTS = [json.loads(line) for line in FIXTURE_REQUESTS.read_text(encoding="utf-8").splitlines()]
runner = CliRunner()


class CountingEncoder(HashingEncoder):
    """The hashing encoder, recording every text it is asked to encode."""

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def encode(self, texts, *, kind="query", batch_size=32):
        self.seen += list(texts)
        return super().encode(texts, kind=kind, batch_size=batch_size)


def test_store_keys_on_encoder_kind_and_text_and_rejects_damaged_rows(tmp_path):
    store = QueryVectorStore(tmp_path / "q.sqlite")
    v = np.arange(4, dtype=np.float32)
    store.put("enc-a", "query", {text_key("금형 마모"): v})
    assert np.array_equal(store.get("enc-a", "query", [text_key("금형 마모")], 4)[text_key("금형 마모")], v)
    assert store.get("enc-b", "query", [text_key("금형 마모")], 4) == {}
    assert store.get("enc-a", "passage", [text_key("금형 마모")], 4) == {}
    assert store.get("enc-a", "query", [text_key("금형 마모")], 8) == {}  # wrong size: a miss, not garbage
    store.close()
    assert QueryVectorStore(tmp_path / "q.sqlite").count() == 1  # persisted


def test_caching_encoder_encodes_each_unseen_text_once_and_returns_the_same_vectors(tmp_path):
    inner = CountingEncoder()
    cached = CachingEncoder(inner, QueryVectorStore(tmp_path / "q.sqlite"))
    texts = ["도금 박리", "용접 균열", "도금 박리", "배터리 발열"]
    first = cached.encode(texts)
    assert inner.seen == ["도금 박리", "용접 균열", "배터리 발열"]
    assert (cached.encoded, cached.reused) == (3, 1)
    np.testing.assert_array_equal(first, HashingEncoder().encode(texts))
    again = CachingEncoder(inner, QueryVectorStore(tmp_path / "q.sqlite")).encode(texts[::-1])
    assert len(inner.seen) == 3  # a new process with the same store encodes nothing
    np.testing.assert_array_equal(again, first[::-1])
    assert cached.id == inner.id and cached.dim == inner.dim


def test_rerank_after_a_catalog_change_encodes_nothing_and_equals_an_uncached_run(tmp_path):
    store = QueryVectorStore(tmp_path / "queries.sqlite")
    inp = write_jsonl(tmp_path / "in.jsonl", REQUESTS)
    before = Matcher.from_config(fast_config(tmp_path / "a")).with_query_cache(store)
    run(before, inp, tmp_path / "before.jsonl")
    assert before.query_cache_counts()["encoded"] > 0

    catalog = tmp_path / "catalog"
    shutil.copytree(FIXTURE_CATALOG, catalog)
    (catalog / "ktl.yaml").unlink()  # an institute leaves the consortium
    changed = fast_config(tmp_path / "b", catalog_dir=str(catalog))
    after = Matcher.from_config(changed).with_query_cache(store)
    run(after, inp, tmp_path / "after.jsonl")
    assert after.query_cache_counts() == {"reused": before.query_cache_counts()["encoded"], "encoded": 0}

    uncached = Matcher.from_config(changed)
    run(uncached, inp, tmp_path / "uncached.jsonl")
    rows = without_latency(read_jsonl(tmp_path / "after.jsonl"))
    assert rows == without_latency(read_jsonl(tmp_path / "uncached.jsonl"))
    assert all("ktl" not in rec["institutes"] for row in rows for rec in row["recommendations"])


def test_cli_reports_reuse_and_survives_a_damaged_cache(fast_config_file, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", REQUESTS[:4])
    args = ["batch", str(inp), "-C", str(fast_config_file), "--json"]
    first = json.loads(runner.invoke(app, [*args, "--out", str(tmp_path / "1.jsonl")]).stdout)
    second = json.loads(runner.invoke(app, [*args, "--out", str(tmp_path / "2.jsonl")]).stdout)
    assert first["query_cache"]["encoded"] > 0 and second["query_cache"]["encoded"] == 0
    assert second["query_cache"]["reused"] == first["query_cache"]["encoded"] + first["query_cache"]["reused"]
    assert (
        read_jsonl(tmp_path / "1.jsonl")[0]["recommendations"]
        == read_jsonl(tmp_path / "2.jsonl")[0]["recommendations"]
    )
    off = runner.invoke(app, [*args, "--out", str(tmp_path / "3.jsonl"), "--no-query-cache"])
    assert off.exit_code == 0 and "query_cache" not in json.loads(off.stdout)

    db = tmp_path / "cache" / "queries.sqlite"  # fast_config puts model_dir at tmp_path
    for extra in db.parent.glob("queries.sqlite-*"):
        extra.unlink()
    db.write_bytes(b"not a database at all" * 100)
    damaged = runner.invoke(
        app, ["batch", str(inp), "-C", str(fast_config_file), "--out", str(tmp_path / "4.jsonl")]
    )
    assert damaged.exit_code == 0, damaged.output
    assert "캐시 없이" in damaged.output and "Traceback" not in damaged.output
    assert len(read_jsonl(tmp_path / "4.jsonl")) == 4


def test_vectors_stored_before_the_store_format_are_not_reused(tmp_path):
    from matcher.encoders.query_cache import STORE_FORMAT

    inner = CountingEncoder()
    store = QueryVectorStore(tmp_path / "q.sqlite")
    # A vector an older version stored under the bare encoder id (encoded in a batch): never served.
    store.put(inner.id, "query", {text_key("도금 박리"): np.ones(inner.dim, dtype=np.float32)})
    got = CachingEncoder(inner, store).encode(["도금 박리"])
    assert inner.seen == ["도금 박리"]
    np.testing.assert_array_equal(got, HashingEncoder().encode(["도금 박리"]))
    assert store.get(f"{inner.id}#{STORE_FORMAT}", "query", [text_key("도금 박리")], inner.dim)

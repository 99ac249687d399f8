"""Cold start: a saved index is served without the heavy packages its retrievers do not need."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from matcher.index_store import build_indexes
from matcher.korean import tokenize_many
from matcher.retrieval.lexical import BM25Index, Postings
from tests.conftest import FIXTURE_REQUESTS, ROOT, fast_config

HEAVY = ("torch", "sentence_transformers", "transformers", "bm25s", "numba", "sklearn", "scipy", "pandas")


def test_saved_bm25_scores_equal_bm25s(tmp_path, fixture_catalog):
    texts = [c.text() for c in fixture_catalog.capabilities]
    built = BM25Index.build(texts)
    built.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25", len(texts))
    assert isinstance(loaded.retriever, Postings)
    queries = [json.loads(line)["text"] for line in FIXTURE_REQUESTS.read_text(encoding="utf-8").splitlines()]
    queries += ["없는단어 zzzz", "시험 시험 시험"]  # unknown tokens only; a repeated token
    for tokens in tokenize_many(queries):
        np.testing.assert_allclose(loaded.scores(tokens), built.scores(tokens), rtol=1e-5, atol=1e-6)
    s_built, i_built = built.search_tokens(tokenize_many(queries), 10)
    s_loaded, i_loaded = loaded.search_tokens(tokenize_many(queries), 10)
    np.testing.assert_array_equal(i_loaded, i_built)
    np.testing.assert_allclose(s_loaded, s_built, rtol=1e-5)


def test_loaded_bm25_saves_again(tmp_path, fixture_catalog):
    texts = [c.text() for c in fixture_catalog.capabilities]
    BM25Index.build(texts).save(tmp_path / "a")
    BM25Index.load(tmp_path / "a", len(texts)).save(tmp_path / "b")
    again = BM25Index.load(tmp_path / "b", len(texts))
    tokens = tokenize_many(texts[:3])
    np.testing.assert_allclose(again.scores(tokens[0]), BM25Index.build(texts).scores(tokens[0]), rtol=1e-5)


def test_matching_from_a_saved_index_imports_no_heavy_package(tmp_path, fixture_catalog):
    config = fast_config(tmp_path)
    build_indexes(fixture_catalog, config)
    config_file = tmp_path / "fixture.toml"
    config.save(config_file)
    script = (
        "import sys\n"
        "from matcher.config import load_config\n"
        "from matcher.engine import Matcher\n"
        f"m = Matcher.from_config(load_config({str(config_file)!r}), rebuild=False)\n"
        "r = m.match('알루미늄 다이캐스팅 기공 불량과 차량 진동 시험')\n"
        "assert r.recommendations\n"
        f"print(','.join(n for n in {HEAVY!r} if n in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip() == "", f"loaded: {out.stdout.strip()}"


def test_the_command_line_imports_no_heavy_package():
    script = f"import sys, matcher.cli.app\nprint(','.join(n for n in {HEAVY!r} if n in sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip() == "", f"loaded: {out.stdout.strip()}"


def test_batch_thread_policy_is_restored_and_needs_no_torch():
    from matcher.threads import batch_threads, set_batch_threads, torch_threads

    assert batch_threads() is None
    with torch_threads(2):
        assert batch_threads() == 2
        set_batch_threads(1)  # re-chosen between batches (`matcher batch --threads 0`)
        assert batch_threads() == 1
    assert batch_threads() is None

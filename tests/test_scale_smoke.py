"""Index correctness at small scale, and the scale benchmark's `--smoke` run (what CI can afford)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from matcher.catalog import load_catalog
from matcher.encoders.hashing import HashingEncoder
from matcher.retrieval.dense import CapabilityIndex
from matcher.synth import synth_capabilities, synth_requests, synth_templates

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "catalog"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load_bench()


@pytest.fixture(scope="module")
def data():
    """Hashing vectors of 1,000 synthetic records and of requests plus held-out records as queries."""
    source = load_catalog(FIXTURE)
    enc = HashingEncoder()
    X = enc.encode([r.text() for r in synth_capabilities(1000, seed=0, source=source)], kind="passage")
    texts = [r.text for r in synth_requests(30, seed=0, source=source)]
    texts += [r.text() for r in synth_capabilities(30, seed=0, source=source, start=1000)]
    return source, X, enc.encode(texts)


def test_flat_equals_numpy_brute_force(bench, data):
    _, X, Q = data
    k = 50
    truth, kth = bench.exact_topk(X, Q, k)
    scores, ids = CapabilityIndex.build(X, "flat").search(Q, k)
    assert bench.recall(X, Q, ids, kth, k) == 1.0
    # Same scores in the same order; ids may differ only inside ties.
    exact = np.take_along_axis(Q @ X.T, truth, 1)
    np.testing.assert_allclose(scores, exact, atol=1e-5)


def test_recall_is_tie_tolerant(bench):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((200, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    X = np.vstack([base, base])  # every vector twice: the exact top-k is ambiguous
    Q = base[:10]
    _, kth = bench.exact_topk(X, Q, 5)
    _, ids = CapabilityIndex.build(X, "flat").search(Q, 5)
    swapped = np.where(ids < 200, ids + 200, ids - 200)  # the twin of every hit
    assert bench.recall(X, Q, swapped, kth, 5) == 1.0
    assert bench.recall(X, Q, np.full_like(ids, 399), kth, 5) < 0.3


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_build_and_search(bench, data, kind):
    _, X, Q = data
    k = 20
    _, kth = bench.exact_topk(X, Q, k)
    index = CapabilityIndex.build(X, kind, seed=1)
    assert index.index_type == kind and len(index) == len(X)
    scores, ids = index.search(Q, k, ef_search=64, nprobe=16)
    assert ids.shape == (len(Q), k)
    assert ((ids >= 0) & (ids < len(X))).all()
    assert all(len(set(row)) == k for row in ids.tolist())
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    assert bench.recall(X, Q, ids, kth, k) >= 0.9


def test_derived_vectors_are_unit_rows_built_from_the_encoded_ones(bench, data):
    source, X, _ = data
    templates = synth_templates(3000, seed=0, source=source)
    groups = bench.groups_of(source, templates)
    Y = bench.derive_vectors(X[:500], templates, groups, 3000, noise=0.35, mix_low=0.4, seed=0, block=1000)
    assert Y.shape == (3000, X.shape[1]) and Y.dtype == np.float32
    np.testing.assert_array_equal(Y[:500], X[:500])
    np.testing.assert_allclose(np.linalg.norm(Y, axis=1), 1.0, atol=1e-5)
    # Each derived vector stays close to some encoded vector (its template parent).
    assert float(np.median((Y[500:] @ X[:500].T).max(axis=1))) > 0.7


@pytest.mark.slow
def test_bench_smoke_runs():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "smoke OK" in proc.stdout

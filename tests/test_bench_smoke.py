"""Tiny versions of the benchmarks: they must run, and what they print must add up (not timing)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # each runs the benchmark in subprocesses: tens of seconds


def _run(script: str) -> str:
    out = subprocess.run(
        [sys.executable, script, "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "smoke ok" in out.stdout
    return out.stdout


def test_latency_bench_smoke(fixture_catalog):
    row = next(line.split() for line in _run("bench/latency.py").splitlines() if line.startswith("hybrid"))
    records, build_s, load_s, p50, p95, rss = (float(v) for v in row[1:7])
    assert records == len(fixture_catalog.capabilities)  # the fixture catalog was indexed, all of it
    assert build_s > 0 and load_s > 0 and 0 < p50 <= p95 and rss > 0


def test_stages_bench_smoke():
    lines = _run("bench/stages.py").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("stage"))
    end = next(i for i, line in enumerate(lines) if line.startswith("total"))
    table = {line[:18].strip(): [float(v) for v in line[18:].split()] for line in lines[start + 1 : end + 1]}
    stages = ["prepare", "hashing encode", "hashing search", "bm25 encode", "bm25 search", "rank + evidence"]
    for stage in stages:  # every retriever of the config timed through the protocol's two halves
        assert stage in table and all(v >= 0 for v in table[stage]), stage
    for column, total in enumerate(table["total"]):  # the stages are parts of the total wall time
        assert sum(v[column] for name, v in table.items() if name != "total") <= total + 0.05
    for line in lines:
        if "queries each" in line:
            assert float(line.split(", ")[1].split()[0]) >= 1.0  # the whole request is always a query

"""Tiny versions of the benchmarks: they must run (correctness, not timing)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_latency_bench_smoke():
    out = subprocess.run(
        [sys.executable, "bench/latency.py", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "smoke ok" in out.stdout


def test_stages_bench_smoke():
    out = subprocess.run(
        [sys.executable, "bench/stages.py", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "smoke ok" in out.stdout and "rank + evidence" in out.stdout

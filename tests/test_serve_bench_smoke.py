"""The desk load benchmark must run (correctness, not timing): fixture catalog, hashing encoder."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # the load benchmark in subprocesses: a minute or more


def test_desk_load_bench_smoke(tmp_path):
    out = subprocess.run(
        [sys.executable, "bench/desk_load.py", "--smoke", "--workdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "smoke ok" in out.stdout and "window 2 ms" in out.stdout

"""A real `matcher serve` process: `matcher match` answers through it, and killing it mid-write loses
no acknowledged feedback."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from matcher.serve.discovery import read_server_file, server_file
from tests.conftest import ROOT
from tests.desk_server import start_desk

pytestmark = pytest.mark.slow  # desk processes started and killed: a minute or more

TEXT = "알루미늄 다이캐스팅 하우징에 기공 불량이 많고, 차량 전장품 EMC 노이즈 시험도 필요합니다."


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "matcher", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    desk = start_desk(tmp_path_factory.mktemp("process"))
    yield desk
    desk.stop()


def test_match_cli_answers_through_the_running_desk(desk):
    served_before = desk.get("/healthz")["batcher"]["requests"]
    through = cli("match", "-C", str(desk.config_file), "--json", TEXT)
    assert through.returncode == 0, through.stderr
    assert desk.get("/healthz")["batcher"]["requests"] == served_before + 1  # the desk answered
    local = cli("match", "-C", str(desk.config_file), "--json", "--local", TEXT)
    assert local.returncode == 0, local.stderr
    assert desk.get("/healthz")["batcher"]["requests"] == served_before + 1  # --local did not ask it
    strip = lambda d: {k: v for k, v in d.items() if k != "latency_ms"}  # noqa: E731
    assert strip(json.loads(through.stdout)) == strip(json.loads(local.stdout))
    table = cli("match", "-C", str(desk.config_file), "--top", "2", TEXT)
    assert table.returncode == 0 and "추천 결과" in table.stdout


def test_plain_match_json_is_answered_before_the_full_cli_loads(desk):
    """`matcher match --json` through a desk imports neither the command modules nor torch."""
    probe = (
        "import sys; from matcher.cli.entry import main; main(); "
        "heavy = [m for m in ('matcher.cli.app', 'matcher.config', 'pydantic', 'torch', 'faiss', 'sklearn', 'kiwipiepy') if m in sys.modules]; "
        "sys.stderr.write('HEAVY=' + ','.join(heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "match", "-C", str(desk.config_file), "--json", "--top", "3", TEXT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY=" in done.stderr and done.stderr.split("HEAVY=")[1].strip() == ""
    data = json.loads(done.stdout)
    assert len(data["recommendations"]) <= 3 and data["id"] == "request"


def test_match_cli_with_other_knobs_does_not_use_the_desk(desk):
    before = desk.get("/healthz")["batcher"]["requests"]
    other = cli("match", "-C", str(desk.config_file), "--set", "joint=false", "--json", TEXT)
    assert other.returncode == 0, other.stderr
    assert desk.get("/healthz")["batcher"]["requests"] == before


def test_match_cli_falls_back_when_the_named_desk_is_down(desk):
    down = cli("match", "-C", str(desk.config_file), "--server", "http://127.0.0.1:9", "--json", TEXT)
    assert down.returncode == 0, down.stderr
    assert "직접 계산합니다" in down.stderr and json.loads(down.stdout)["recommendations"]


def test_server_file_names_the_live_process(desk):
    info = read_server_file(desk.config)
    assert info.pid == desk.process.pid and info.url == desk.url
    assert oct(server_file(desk.config).stat().st_mode & 0o777) == "0o600"


def test_sigkill_mid_burst_loses_no_acknowledged_feedback(tmp_path):
    """Several writers post feedback as fast as they can; the server is SIGKILLed in the middle. Every
    row the server acknowledged is in the store afterwards, the store passes integrity_check, and a
    restarted desk serves it."""
    desk = start_desk(tmp_path / "a")
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n: int) -> None:
        i = 0
        while not stop.is_set():
            rid = f"w{n}-{i}"
            body = {"request_id": rid, "text": f"요청 {rid}", "accepted": ["kims"], "who": f"writer{n}"}
            try:
                data = desk.post("/api/feedback", body, timeout=10)
            except OSError:
                return  # the server is gone: this write was never acknowledged
            assert data["id"] == rid
            with lock:
                acknowledged.append(rid)
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    desk.process.send_signal(signal.SIGKILL)
    desk.process.wait()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acknowledged) >= 60

    con = sqlite3.connect(desk.feedback_db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {r for (r,) in con.execute("SELECT request_id FROM verdict WHERE accepted = 1")}
    logged = {r for (r,) in con.execute("SELECT request_id FROM decision")}
    con.close()
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged rows lost"
    assert set(acknowledged) <= logged

    # a stale server file from the killed process is ignored, and a new desk opens the same store
    again = start_desk(tmp_path / "a")
    try:
        data = again.post("/api/feedback", {"request_id": acknowledged[0], "rejected": ["ktl"]})
        assert data["accepted"] == ["kims"] and data["rejected"] == ["ktl"]
    finally:
        again.stop()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 0)])
def test_stop_signals_shut_down_cleanly_and_remove_the_server_file(tmp_path, sig, code):
    """uvicorn shuts down gracefully, then re-raises SIGTERM: the desk's cleanup runs before that.
    Ctrl-C (SIGINT) ends with exit code 0."""
    desk = start_desk(tmp_path / "b")
    assert server_file(desk.config).is_file()
    desk.process.send_signal(sig)
    desk.process.wait(timeout=60)
    log = desk.log.read_text()
    assert desk.process.returncode == code, log
    assert not server_file(desk.config).exists()
    assert "Traceback" not in log

"""Starts a real `matcher serve` process on 127.0.0.1 (a free port) over the fixture catalog, for the
process, browser and restart tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from matcher.config import MatcherConfig
from matcher.serve.discovery import read_server_file
from tests.conftest import ROOT, fast_config

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class DeskProcess:
    process: subprocess.Popen
    url: str
    config: MatcherConfig
    config_file: Path
    feedback_db: Path
    log: Path

    def get(self, path: str) -> dict:
        with NO_PROXY.open(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict, timeout: float = 30) -> dict:
        data = json.dumps(body, ensure_ascii=False).encode()
        request = urllib.request.Request(
            self.url + path, data, {"Content-Type": "application/json"}, method="POST"
        )
        with NO_PROXY.open(request, timeout=timeout) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_desk(tmp: Path, *extra: str, timeout: float = 180.0) -> DeskProcess:
    """Start `python -m matcher serve --port 0` and wait until /healthz answers."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = fast_config(tmp)
    config_file = tmp / "fixture.toml"
    config.save(config_file)
    feedback_db = tmp / "feedback.sqlite3"
    log = tmp / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MATCHER_TOKEN": ""}
    env.pop("MATCHER_TOKEN")
    with open(log, "wb") as fh:
        process = subprocess.Popen(
            [sys.executable, "-m", "matcher", "serve", "--port", "0", "-C", str(config_file),
             "--feedback-db", str(feedback_db), "--runs-dir", str(tmp / "runs"), *extra],
            cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"matcher serve exited {process.returncode}:\n{log.read_text()}")
        info = read_server_file(config)
        if info is not None and info.pid == process.pid:
            desk = DeskProcess(process, info.url, config, config_file, feedback_db, log)
            try:
                if desk.get("/healthz")["status"] == "ok":
                    return desk
            except OSError:
                pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"matcher serve did not start in {timeout}s:\n{log.read_text()}")

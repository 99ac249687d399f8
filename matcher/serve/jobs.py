"""Backlog files uploaded to the desk, matched in the background with the `matcher batch` machinery.

Each job is a folder `<root>/<id>/` holding the uploaded input, `results.jsonl` (exactly the lines
`matcher batch` writes), its errors file and `job.json` (status and counts). Jobs run one at a time on
their own thread; their matching goes through the desk's `MicroBatcher` in small chunks, so the desk
stays responsive. A job that a stop or a crash interrupted is queued again when the server starts, and
`run_batch` resumes it from the ids already written.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Literal

from matcher.batch import BatchSummary, errors_path, run_batch
from matcher.problems import InputError, Problem
from matcher.result import MatchResult
from matcher.schema import Request
from matcher.serve.batcher import MicroBatcher

log = logging.getLogger("matcher.serve")

Status = Literal["queued", "running", "done", "failed"]
JOB_ID = re.compile(r"^[0-9a-f]{12}$")
CHUNK = 8
"""Requests per batcher call from a job: small, so an interactive request waits at most one chunk."""


@dataclass
class Job:
    """One uploaded backlog and how far its run got (the content of `job.json`)."""

    id: str
    filename: str
    input_format: Literal["jsonl", "csv"]
    created: str
    status: Status = "queued"
    total: int = 0
    handled: int = 0
    done: int = 0
    skipped: int = 0
    errors: int = 0
    abstained: int = 0
    seconds: float = 0.0
    message: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class JobRunner:
    """Creates, persists and runs backlog jobs under `root`, one at a time."""

    def __init__(self, root: Path, batcher: MicroBatcher, *, top: int, max_text_chars: int):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._batcher = batcher
        self._top = top
        self._max_text_chars = max_text_chars
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        for path in sorted(self.root.glob("*/job.json")):
            job = self._read(path)
            if job is None:
                continue
            self._jobs[job.id] = job
            if job.status in ("queued", "running"):  # interrupted by a stop or a crash: resume
                job.status = "queued"
                self._queue.put(job.id)
        self._thread = threading.Thread(target=self._loop, name="matcher-jobs", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ paths
    def folder(self, job: Job) -> Path:
        return self.root / job.id

    def input_path(self, job: Job) -> Path:
        return self.folder(job) / f"input.{job.input_format}"

    def output_path(self, job: Job) -> Path:
        return self.folder(job) / "results.jsonl"

    def errors_path(self, job: Job) -> Path:
        return errors_path(self.output_path(job))

    # ------------------------------------------------------------------ API
    def create(self, filename: str, data: bytes) -> Job:
        """Store an upload and queue it. Raises `InputError` for a file that is not .jsonl/.csv UTF-8."""

        name = Path(filename or "upload").name
        suffix = Path(name).suffix.lower()
        if suffix not in (".jsonl", ".csv"):
            raise InputError([Problem(name, "파일 형식은 .jsonl 또는 .csv여야 합니다 (use .jsonl or .csv)")])
        if not data.strip():
            raise InputError([Problem(name, "빈 파일입니다 (empty file)")])
        job = Job(
            id=secrets.token_hex(6),
            filename=name,
            input_format="csv" if suffix == ".csv" else "jsonl",
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self.folder(job).mkdir(parents=True)
        self.input_path(job).write_bytes(data)
        with self._lock:
            self._jobs[job.id] = job
            self._save(job)
        self._queue.put(job.id)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id) if JOB_ID.match(job_id) else None

    def all(self) -> list[Job]:
        """Newest first."""
        return sorted(self._jobs.values(), key=lambda j: (j.created, j.id), reverse=True)

    def wait(self, job_id: str, timeout: float = 30.0) -> Job | None:
        """Block until the job has finished (for tests and scripts)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            job = self.get(job_id)
            if job is None or job.status in ("done", "failed"):
                return job
            time.sleep(0.05)
        return self.get(job_id)

    def close(self) -> None:
        """Stop after the current line; an unfinished job stays queued on disk and resumes next start."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout=30)

    # ------------------------------------------------------------------ running
    def _loop(self) -> None:
        while (job_id := self._queue.get()) is not None:
            if self._stopping.is_set():
                return
            job = self._jobs[job_id]
            try:
                self._run(job)
            except Exception:  # a job must never take the desk down; its status says what happened
                log.exception("batch job %s failed", job.id)
                self._finish(
                    job, "failed", "처리 중 오류가 발생했습니다 (internal error; see the server log)"
                )

    def _run(self, job: Job) -> None:
        job.status, job.message = "running", None
        self._save(job)
        last_save = 0.0

        def progress(summary: BatchSummary) -> None:
            nonlocal last_save
            c = summary.counts
            job.total, job.handled, job.seconds = summary.total, summary.handled, round(summary.seconds, 2)
            job.done, job.skipped, job.errors, job.abstained = c.done, c.skipped, c.errors, c.abstained
            if time.monotonic() - last_save > 1.0:
                last_save = time.monotonic()
                self._save(job)

        try:
            summary = run_batch(
                self._matching,
                self.input_path(job),
                self.output_path(job),
                top=self._top,
                max_text_chars=self._max_text_chars,
                progress=progress,
                should_stop=self._stopping.is_set,
            )
        except InputError as exc:
            self._finish(job, "failed", "; ".join(str(p) for p in exc.problems))
            return
        if summary.interrupted:  # the server is stopping: stays queued, resumes on the next start
            job.status = "queued"
            self._save(job)
            return
        self._finish(job, "done", None)

    def _matching(self, requests: Iterable[Request]) -> Iterator[MatchResult]:
        source = iter(requests)
        while chunk := list(islice(source, CHUNK)):
            yield from self._batcher.submit_chunk(chunk, self._top).result()

    def _finish(self, job: Job, status: Status, message: str | None) -> None:
        job.status, job.message = status, message
        self._save(job)

    # ------------------------------------------------------------------ persistence
    def _save(self, job: Job) -> None:
        path = self.folder(job) / "job.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(job.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    @staticmethod
    def _read(path: Path) -> Job | None:
        try:
            return Job(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            log.warning("ignoring unreadable job file %s", path)
            return None

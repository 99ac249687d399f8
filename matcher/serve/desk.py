"""What `matcher serve` loads once and shares between requests: the matcher, the feedback store, the
micro-batcher and the batch jobs."""

from __future__ import annotations

import asyncio
import hashlib
import platform
import threading
from dataclasses import dataclass
from pathlib import Path

from matcher import __version__
from matcher.config import MatcherConfig
from matcher.feedback import DEFAULT_DB, Feedback, FeedbackStore, resolve_labels
from matcher.problems import InputError, Problem
from matcher.result import MatchResult
from matcher.schema import Request
from matcher.serve.batcher import MicroBatcher
from matcher.serve.discovery import config_fingerprint
from matcher.serve.jobs import JobRunner
from matcher.serve.views import REVIEW_BELOW


@dataclass(frozen=True)
class DeskSettings:
    """Server-side knobs that are not matching knobs (those live in `MatcherConfig`)."""

    feedback_db: Path = DEFAULT_DB
    work_dir: Path = Path("models/desk")
    """Uploaded backlogs and their results (`<work_dir>/batches/<job>/`)."""
    runs_dir: Path = Path("runs")
    """Where `matcher evaluate --out` runs are read from for the evaluation page."""
    window_ms: float = 2.0
    max_batch: int = 4
    """Measured: 4 requests per call beat one at a time; 16 were slower on a busy 2-core machine."""
    review_below: float = REVIEW_BELOW
    max_upload_bytes: int = 20 << 20


def desk_request_id(text: str) -> str:
    """A stable id for a request typed at the desk: the same text gets the same feedback row."""
    return "desk-" + hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:12]


class Desk:
    """One warm matcher behind a single matching thread, plus the feedback store and batch jobs."""

    def __init__(self, matcher, settings: DeskSettings = DeskSettings()):
        self.matcher = matcher
        self.config: MatcherConfig = matcher.config
        self.catalog = matcher.catalog
        self.settings = settings
        self.records = {c.id: c for c in self.catalog.capabilities}
        self._by_top = {self.config.top: matcher}
        self.batcher = MicroBatcher(self._run, window_ms=settings.window_ms, max_batch=settings.max_batch)
        self.store = FeedbackStore(settings.feedback_db)
        self._store_lock = threading.Lock()
        self.jobs = JobRunner(
            Path(settings.work_dir) / "batches",
            self.batcher,
            top=self.config.top,
            max_text_chars=self.config.max_text_chars,
        )

    def close(self) -> None:
        self.jobs.close()
        self.batcher.close()
        with self._store_lock:
            self.store.close()

    # ------------------------------------------------------------------ matching
    def _run(self, top: int, requests) -> list[MatchResult]:
        matcher = self._by_top.get(top)
        if matcher is None:
            matcher = self._by_top[top] = self.matcher.with_config(self.config.replace(top=top))
        return matcher.match_batch(requests)

    async def match(self, request: Request, top: int | None = None) -> MatchResult:
        """Match on the batcher's thread without blocking the event loop."""
        future = self.batcher.submit(request, top or self.config.top)
        return await asyncio.wrap_future(future)

    # ------------------------------------------------------------------ feedback
    def record_feedback(
        self,
        request_id: str,
        text: str | None,
        *,
        accepted: list[str],
        rejected: list[str],
        forwarded: list[str],
        who: str | None,
        note: str | None,
    ) -> tuple[Feedback, int]:
        """Resolve labels through the catalog and store them; returns the feedback and its log entry.

        Raises:
            InputError: an unknown institute, nothing given, or a new request without its text.
        """
        problems: list[Problem] = []
        resolved: dict[str, list[str]] = {}
        for field_name, labels in (("accepted", accepted), ("rejected", rejected), ("forwarded", forwarded)):
            try:
                resolved[field_name] = resolve_labels(self.catalog, labels, field_name)
            except InputError as exc:
                problems += exc.problems
        if problems:
            raise InputError(problems)
        with self._store_lock:
            fb = self.store.add(
                request_id, text, resolved["accepted"], resolved["rejected"], resolved["forwarded"], who, note
            )
            seq = self.store.decisions(fb.request_id)[-1].seq
        return fb, seq

    def feedback_for(self, request_id: str) -> Feedback | None:
        with self._store_lock:
            return self.store.get(request_id)

    # ------------------------------------------------------------------ health
    def health(self) -> dict:
        import fastapi
        import uvicorn

        manifest = self.matcher.indexes.manifest
        dense = {
            name: retriever.encoder.id
            for name, retriever in self.matcher.indexes.retrievers.items()
            if hasattr(retriever, "encoder")
        }
        return {
            "status": "ok",
            "version": __version__,
            "config": {"name": self.config.name, "fingerprint": config_fingerprint(self.config)},
            "model": {"retrievers": list(self.config.retrievers), "encoders": dense},
            "index": {
                "catalog_hash": manifest.get("catalog_hash"),
                "created": manifest.get("created"),
                "records": len(self.matcher.indexes.records),
            },
            "catalog": {
                "hash": self.catalog.content_hash,
                "institutes": len(self.catalog.institutes),
                "records": len(self.catalog.capabilities),
            },
            "batcher": {
                "window_ms": self.settings.window_ms,
                "max_batch": self.settings.max_batch,
                **self.batcher.stats.to_dict(),
            },
            "versions": {
                "matcher": __version__,
                "python": platform.python_version(),
                "fastapi": fastapi.__version__,
                "uvicorn": uvicorn.__version__,
            },
        }

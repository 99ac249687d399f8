"""One matching thread for the whole server: concurrent requests are gathered into one encoder call.

Every `Matcher` call of the desk runs on this thread, so the matcher (torch, FAISS, kiwi, BM25) is never
entered by two threads at once, and requests that arrive within `window_ms` of each other are matched
as one batch (`Matcher.match_batch`): one forward pass instead of several. Interactive requests go
before the chunks of background batch jobs, so a long backlog never makes the desk wait for more
than one chunk.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from matcher.result import MatchResult
from matcher.schema import Request

RunFn = Callable[[int, Sequence[Request]], list[MatchResult]]
"""Matches requests with `top` recommendations each: `run(top, requests) -> results` in order."""


@dataclass
class _Item:
    top: int
    requests: list[Request]
    single: bool
    future: Future = field(default_factory=Future)


@dataclass
class BatcherStats:
    """Counters for /healthz and the load benchmark: how much batching actually happened."""

    calls: int = 0
    requests: int = 0
    largest: int = 0

    def to_dict(self) -> dict[str, float]:
        mean = self.requests / self.calls if self.calls else 0.0
        return {
            "calls": self.calls,
            "requests": self.requests,
            "largest": self.largest,
            "mean": round(mean, 2),
        }


class MicroBatcher:
    """Gathers interactive requests for up to `window_ms` (at most `max_batch`) and matches them at once.

    Args:
        run: does the matching (called on the batcher's thread only).
        window_ms: how long the first waiting request waits for company. 0 takes only what is already
            queued (no added latency). Defaults to 0.
        max_batch: most requests in one call; 1 turns batching off. Defaults to 16.
    """

    def __init__(self, run: RunFn, *, window_ms: float = 0.0, max_batch: int = 16):
        self._run = run
        self.window_s = max(0.0, window_ms) / 1000
        self.max_batch = max(1, max_batch)
        self.stats = BatcherStats()
        self._interactive: deque[_Item] = deque()
        self._background: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="matcher-batcher", daemon=True)
        self._thread.start()

    def submit(self, request: Request, top: int) -> Future:
        """Queue one interactive request; the future resolves to its `MatchResult`."""
        return self._put(self._interactive, _Item(top, [request], single=True))

    def submit_chunk(self, requests: Sequence[Request], top: int) -> Future:
        """Queue a chunk of a background job; the future resolves to the list of results."""
        return self._put(self._background, _Item(top, list(requests), single=False))

    def close(self) -> None:
        """Stop the thread after the queued work; later submissions fail."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

    def _put(self, queue: deque[_Item], item: _Item) -> Future:
        with self._cond:
            if self._closed:
                raise RuntimeError("the desk is shutting down")
            queue.append(item)
            self._cond.notify_all()
        return item.future

    def _take(self) -> list[_Item] | None:
        """The next unit of work: gathered interactive items, else one background chunk."""
        with self._cond:
            while not self._interactive and not self._background:
                if self._closed:
                    return None
                self._cond.wait()
            if not self._interactive:
                return [self._background.popleft()]
            deadline = time.monotonic() + self.window_s
            while len(self._interactive) < self.max_batch and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            taken = [self._interactive.popleft() for _ in range(min(self.max_batch, len(self._interactive)))]
            return taken

    def _loop(self) -> None:
        while (items := self._take()) is not None:
            by_top: dict[int, list[_Item]] = {}
            for item in items:
                by_top.setdefault(item.top, []).append(item)
            for top, group in by_top.items():
                self._match(top, group)

    def _match(self, top: int, group: list[_Item]) -> None:
        requests = [r for item in group for r in item.requests]
        try:
            results = self._run(top, requests)
        except BaseException as exc:  # handed to the waiting request, which reports it
            for item in group:
                item.future.set_exception(exc)
            return
        self.stats.calls += 1
        self.stats.requests += len(requests)
        self.stats.largest = max(self.stats.largest, len(requests))
        start = 0
        for item in group:
            part = results[start : start + len(item.requests)]
            start += len(item.requests)
            item.future.set_result(part[0] if item.single else part)

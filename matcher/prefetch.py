"""A cold one-shot match on several cores: each retriever encodes the request in its own process.

A `matcher match` without a desk spends most of its seconds loading models, one after the other:
kiwi's morpheme model for BM25 (~1.8 s on a 2-core EPYC), USE's weights (~0.9 s), the e5 ONNX
session (~0.5 s). None of them needs the index, and each holds the GIL while it loads, so threads do
not overlap them. Forked workers do: each runs its retriever's `query_encoder` on the request's
queries and sends the result back through a pipe while the parent loads the catalog and the indexes.
The parent then searches with what came back, and encodes itself whatever a worker could not give
(an error, a timeout, a platform without fork): the result is the same either way, only slower.

Used for one request in a process that has loaded nothing yet; a desk, a batch or an evaluation keeps
its models warm and gains nothing from it.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from matcher.config import MatcherConfig
    from matcher.schema import Request

WAIT_S = 60.0
"""How long the parent waits for a worker after its own loading is done (then encodes itself)."""


YIELD_NICE = 10
"""Niceness of the other workers when one retriever's query encoder is the slowest to load
(`slowest_query_load`, kiwi): four processes shared 2 cores evenly and kiwi finished last; yielding
to it cut a cold match from 3.9–4.2 s to 3.3–3.5 s on a 2-core EPYC (docs/speed.md)."""


def worker_niceness(retrievers: Sequence[str]) -> dict[str, int]:
    """Each configured retriever's worker and its niceness: the others yield to the slowest to load."""
    from matcher.retrieval.registry import retriever_class

    names = list(dict.fromkeys(retrievers))
    slowest = {n for n in names if retriever_class(n).slowest_query_load}
    return {n: YIELD_NICE if slowest and n not in slowest else 0 for n in names}


def keep_freed_memory() -> None:
    """glibc malloc, in a short-lived worker: keep freed memory rather than hand it back to the kernel
    and fault it in again. Loading kiwi then makes ~30% fewer page faults (76k -> 53k) and takes
    CPU median 2.24 -> 2.07 s over 8 alternating runs on a 2-core EPYC; the worker exits seconds later."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        libc.mallopt(m_top_pad, 256 << 20)
        libc.mallopt(m_trim_threshold, 512 << 20)
        libc.mallopt(m_mmap_threshold, 32 << 20)
    except (OSError, AttributeError):  # not glibc
        pass


def _encode(conn: Connection, name: str, config: MatcherConfig, queries: list[str], nice: int) -> None:
    """In the worker: encode and send `(True, representation)`, or `(False, reason)`."""
    keep_freed_memory()
    try:
        from matcher.retrieval.registry import retriever_class

        if nice:
            os.nice(nice)
        encode = retriever_class(name).query_encoder(name, config)
        conn.send((True, None if encode is None else encode(queries)))
    except BaseException as exc:  # the parent encodes itself and reports the error if it recurs
        conn.send((False, f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


_spare: tuple[Any, Connection] | None = None
"""A worker forked at process start that is loading the slowest query encoder (`start_spare`)."""


def start_spare() -> None:
    """Fork, first thing in a one-shot `matcher match`, a worker that loads kiwi (BM25's query
    encoder, the slowest to load: ~2 s of CPU) while this process still imports the CLI (~0.8 s).
    It imports nothing else before its job arrives: whatever this process has not imported yet the
    spare would import again, on the same two cores. `QueryPrefetch` then hands it the queries of the
    retriever that is slowest to load instead of forking a fresh worker; unused (a config without
    BM25), it exits as soon as it is told so or this process ends."""
    global _spare
    if _spare is not None or not can_fork():
        return
    ctx = multiprocessing.get_context("fork")
    mine, theirs = ctx.Pipe()
    process = ctx.Process(target=_warm_then_encode, args=(theirs, mine), daemon=True)
    process.start()
    theirs.close()
    _spare = (process, mine)


def _warm_then_encode(conn: Connection, parents_end: Connection) -> None:
    """In the spare: load kiwi, then encode the job it is sent (if any)."""
    parents_end.close()  # else the spare's own copy keeps the pipe open and it never sees EOF
    keep_freed_memory()
    try:
        from matcher.korean import warm_up

        warm_up()
    except BaseException:  # the job reports it if it fails again
        pass
    try:
        job = conn.recv()
    except (EOFError, OSError):  # not needed after all
        return
    _encode(conn, *job)


def _claim_spare() -> tuple[Any, Connection] | None:
    global _spare
    spare, _spare = _spare, None
    return spare


class QueryPrefetch:
    """Workers encoding one request's queries, one per configured retriever."""

    def __init__(self, config: MatcherConfig, queries: list[str]):
        from matcher.retrieval.registry import retriever_class

        ctx = multiprocessing.get_context("fork")
        self._workers: dict[str, tuple[Any, Connection]] = {}
        spare = _claim_spare()
        for name, nice in worker_niceness(config.retrievers).items():
            if spare is not None and retriever_class(name).slowest_query_load:
                try:
                    spare[1].send((name, config, queries, nice))
                    self._workers[name], spare = spare, None
                    continue
                except (OSError, ValueError):  # the spare has gone: fork as usual
                    spare = None
            receive, send = ctx.Pipe(duplex=False)
            process = ctx.Process(target=_encode, args=(send, name, config, queries, nice), daemon=True)
            process.start()
            send.close()
            self._workers[name] = (process, receive)
        if spare is not None:
            spare[1].close()  # no retriever of this config needed it: it exits

    def results(self, timeout: float = WAIT_S) -> dict[str, Any]:
        """What each worker encoded, by retriever name (missing: encode in the parent)."""
        out: dict[str, Any] = {}
        for name, (process, receive) in self._workers.items():
            try:
                if receive.poll(timeout):
                    ok, value = receive.recv()
                    if ok and value is not None:
                        out[name] = value
            except (EOFError, OSError):  # the worker died before sending
                pass
            finally:
                receive.close()
                process.join(timeout=1)
                if process.is_alive():
                    process.kill()
        self._workers.clear()
        return out


def can_fork() -> bool:
    """Workers help only with two cores or more, on Linux: macOS offers fork, but its system libraries
    (Accelerate under numpy) are not fork-safe."""
    if (os.cpu_count() or 1) < 2 or not sys.platform.startswith("linux"):
        return False
    return "fork" in multiprocessing.get_all_start_methods()


def start(config: MatcherConfig, request: Request) -> QueryPrefetch | None:
    """Start the workers for one request, or None where they cannot help (one core, not Linux)."""
    if not config.prefetch_queries or not can_fork():
        spare = _claim_spare()
        if spare is not None:
            spare[1].close()
        return None
    from matcher.hits import prepare

    return QueryPrefetch(config, prepare([request], config).queries)

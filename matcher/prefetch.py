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


def _encode(conn: Connection, name: str, config: MatcherConfig, queries: list[str], nice: int) -> None:
    """In the worker: encode and send `(True, representation)`, or `(False, reason)`."""
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


class QueryPrefetch:
    """Workers encoding one request's queries, one per configured retriever."""

    def __init__(self, config: MatcherConfig, queries: list[str]):
        ctx = multiprocessing.get_context("fork")
        self._workers: dict[str, tuple[Any, Connection]] = {}
        for name, nice in worker_niceness(config.retrievers).items():
            receive, send = ctx.Pipe(duplex=False)
            process = ctx.Process(target=_encode, args=(send, name, config, queries, nice), daemon=True)
            process.start()
            send.close()
            self._workers[name] = (process, receive)

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


def start(config: MatcherConfig, request: Request) -> QueryPrefetch | None:
    """Start the workers for one request, or None where they cannot help (one core, not Linux)."""
    if not config.prefetch_queries or (os.cpu_count() or 1) < 2:
        return None
    # Linux only: macOS offers fork, but its system libraries (Accelerate under numpy) are not fork-safe.
    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return None
    from matcher.hits import prepare

    return QueryPrefetch(config, prepare([request], config).queries)

"""One policy for torch's thread count, shared by every command that encodes many texts at once.

On a shared 2-core machine the count decides speed more than anything else (BENCHMARKS.md "## Batch"):
idle, 2 threads encode batches 1.5x faster than 1; with another job holding a core, 2 threads were 3-12x
slower, since every operator waits at a barrier for a thread that is not running. A few texts (one
interactive request and its needs) always run on one thread (`matcher.encoders.base.SMALL_BATCH`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matcher.engine import Matcher
    from matcher.result import MatchResult
    from matcher.schema import Request

_batch_threads: int | None = None


def batch_threads() -> int | None:
    """The thread count the running command chose for batches (None outside `torch_threads`).

    Encoders that set their threads per call (ONNX Runtime sessions, torch models loaded after the
    command started) read it here."""
    return _batch_threads


def encode_threads(n_texts: int, fallback: int, small: int = 1) -> int:
    """Threads for an encoder call of `n_texts`: `small` for a request and its needs
    (`encoders.base.SMALL_BATCH`), else the running command's batch count, or `fallback` outside a
    command that set one. The one rule every encoder (ONNX, torch, USE) follows."""
    from matcher.encoders.base import SMALL_BATCH

    if n_texts <= SMALL_BATCH:
        return small
    return _batch_threads or fallback


def runnable_others(loadavg: str) -> int | None:
    """Processes running besides the reader, from a `/proc/loadavg` line ("0.87 1.01 1.08 3/82 2004")."""
    try:
        running = int(loadavg.split()[3].split("/")[0])
    except (IndexError, ValueError):
        return None
    return max(0, running - 1)  # the reader itself is running


def running_elsewhere(samples: int = 5, interval_s: float = 0.02) -> int | None:
    """Other processes on a CPU right now: the least of a few reads of `/proc/loadavg` (None without it).

    Not the 1-minute load average: it lags a minute behind, so a command started right after another
    one ended saw a load of ~1 on an idle machine and encoded on half the cores (`make demo`'s index
    build after `matcher model install`: 248 s on one thread)."""
    seen: list[int] = []
    for i in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as fh:
                others = runnable_others(fh.read())
        except OSError:
            return None
        if others is None:
            return None
        seen.append(others)
        if i + 1 < samples:
            time.sleep(interval_s)
    return min(seen)


def auto_threads(cores: int | None = None, load: float | None = None, own: float = 0.0) -> int:
    """torch threads for the next batch: the cores other processes leave idle, at least 1.

    `load` is what other processes use, as a load figure; when None, the processes running elsewhere
    right now (`running_elsewhere`), else the 1-minute load average less `own`, this process's part of
    it (its thread count once it has been matching for a while). Measured on the 2-core machine
    (BENCHMARKS.md "## Batch"): idle, 2 threads match 1.5x faster than 1; with other jobs holding a
    core, 2 threads were 3-12x slower than 1, since every operator waits at a barrier for a thread that
    is not running.
    """
    cores = cores or os.cpu_count() or 1
    if load is None:
        now = running_elsewhere()
        if now is not None:
            return max(1, min(cores, cores - now))
        try:
            load = os.getloadavg()[0]
        except OSError:  # pragma: no cover - platforms without a load average
            return 1
    others = max(0.0, load - own)
    return max(1, min(cores, int(cores - others + 0.5)))


def set_batch_threads(threads: int) -> None:
    """Use `threads` for the next batches: ONNX Runtime sessions read it per call, and torch is set too
    when something has imported it already (a command served by ONNX Runtime never pays its import)."""
    global _batch_threads
    _batch_threads = threads
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Set the batch thread count for the run (see `auto_threads` for why the count matters so much).

    The previous counts are restored, so the command leaves its process (e.g. a test run) as it found it."""
    global _batch_threads
    previous_batch = _batch_threads
    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else None
    set_batch_threads(threads)
    try:
        yield
    finally:
        _batch_threads = previous_batch
        if torch is not None and previous is not None:
            torch.set_num_threads(previous)


def batches_with_auto_threads(
    matcher: Matcher, batch_size: int, on_change: Callable[[int, int], None] | None = None
) -> Callable[[Iterable[Request]], Iterator[MatchResult]]:
    """`Matcher.match_many`, re-choosing the batch thread count before each batch (`auto_threads`).

    A run of hours outlives the load it started under, and 2 threads on a core that another job takes
    are several times slower than 1. `on_change(old, new)` is told of every change.
    """

    def match(requests: Iterable[Request]) -> Iterator[MatchResult]:
        source = iter(requests)
        first = True
        while chunk := list(islice(source, batch_size)):
            current = batch_threads() or 1
            wanted = auto_threads(own=0.0 if first else current)
            if wanted != current:
                set_batch_threads(wanted)
                if on_change:
                    on_change(current, wanted)
            first = False
            yield from matcher.match_batch(chunk)

    return match

"""Writing a file so that it is either the old one or the whole new one, never half written.

The new content goes to a temporary sibling, is flushed (and fsynced on request), then renamed over
the target: a rename within a directory is atomic on POSIX, so a crash or Ctrl-C never leaves a
truncated model, config, report or assignment that a later run would read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO, TextIO


@contextmanager
def _replacing(path: str | Path, mode: str, fsync: bool) -> Iterator[IO]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | Path, *, fsync: bool = False) -> Iterator[TextIO]:
    """A text file handle whose content replaces `path` when the block ends without an error."""
    with _replacing(path, "w", fsync) as fh:
        yield fh


@contextmanager
def atomic_write_binary(path: str | Path, *, fsync: bool = False) -> Iterator[BinaryIO]:
    """A binary file handle (for `np.savez` and the like) that replaces `path` the same way."""
    with _replacing(path, "wb", fsync) as fh:
        yield fh


def write_text_atomic(path: str | Path, text: str) -> None:
    """`Path.write_text` (UTF-8), atomically."""
    with atomic_write(path) as fh:
        fh.write(text)

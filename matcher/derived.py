"""Files derived from a model file to load it faster, rebuilt whenever the file they come from changes.

A cold `matcher match` pays for every model it loads. Some of that work gives the same result each
time (ONNX Runtime optimising e5's graph, numpy inflating USE's compressed weights), so it is done
once and its result kept beside the model or under the model directory. Each derived file has a
stamp: what it was made from (size and modification time of the source) and with what (a format or
library version). A stamp that differs, a missing or damaged file, or a folder that cannot be
written only means loading the slow way; never a wrong model.
"""

from __future__ import annotations

import json
from pathlib import Path

from matcher.atomic import write_text_atomic


def source_stamp(source: Path, *made_with: str | int) -> list[str | int]:
    """What a derived file depends on: the source's size and mtime, and the format or versions given."""
    stat = Path(source).stat()
    return [stat.st_size, stat.st_mtime_ns, *made_with]


def is_fresh(stamp_file: Path, stamp: list[str | int]) -> bool:
    """True when `stamp_file` records exactly `stamp`."""
    try:
        return json.loads(Path(stamp_file).read_text(encoding="utf-8")) == stamp
    except (OSError, ValueError):
        return False


def write_stamp(stamp_file: Path, stamp: list[str | int]) -> bool:
    """Record the stamp once the derived file is in place; False when the folder cannot be written."""
    try:
        write_text_atomic(stamp_file, json.dumps(stamp))
    except OSError:
        return False
    return True

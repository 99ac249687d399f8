"""Where a config's TOML text comes from (a file or a preset), with the standard library only.

Split from `matcher.config` (which needs pydantic) so that `matcher match --json` can find a running
desk for its config before anything heavy is imported (`matcher.cli.entry`).
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

DEFAULT_PRESET = "hybrid"
DEFAULT_MODEL_DIR = "models"
PRESETS = ("hybrid", "hybrid-base", "hybrid-cards", "dense", "e5", "use", "bm25", "tfidf")
"""Config names shipped in `matcher/configs/`."""


def config_text(source: str | Path | None) -> tuple[str, str] | None:
    """(name, TOML text) of a preset name or a file path; None when there is no such preset or file."""
    name = str(source if source is not None else DEFAULT_PRESET)
    if name in PRESETS and not Path(name).exists():
        return name, resources.files("matcher.configs").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    path = Path(name)
    if not path.is_file():
        return None
    return name, path.read_text(encoding="utf-8")


def source_digest(text: str) -> str:
    """A hash of a config's TOML text: two processes reading the same text run the same config."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

"""Loading the matcher for a command: the one place that builds a missing or stale index with a notice.

Shared by every command that matches (match, batch, evaluate, tune, train, serve), so none of them
imports another command's module to get it.
"""

from __future__ import annotations

from matcher.cli.output import err_console, progress_callback
from matcher.config import MatcherConfig


def stage_progress(description: str):
    """A progress bar fed by library callbacks `(stage, done, total)`: returns (report, close)."""
    update, close = progress_callback(description)

    def report(stage: str, done: int, total: int) -> None:
        update(done, total)

    return report, close


def load_matcher(cfg: MatcherConfig):
    """The matcher for a config; a missing or stale index is (re)built once, with a notice.

    A missing model raises `ModelNotFound`, which `user_errors` turns into exit 3."""
    from matcher.engine import Matcher

    report, close = stage_progress("색인 생성")

    def notice(reasons: list[str]) -> None:
        err_console.print(f"[yellow]색인을 새로 만듭니다[/] ({'; '.join(reasons)})")

    try:
        return Matcher.from_config(cfg, progress=report, on_rebuild=notice)
    finally:
        close()

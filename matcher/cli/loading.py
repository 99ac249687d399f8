"""Loading the matcher for a command: the one place that builds a missing or stale index with a notice.

Shared by every command that matches (match, batch, evaluate, tune, train, serve), so none of them
imports another command's module to get it.
"""

from __future__ import annotations

from matcher.cli.output import err_console, progress_callback
from matcher.config import MatcherConfig


def query_store(model_dir: str, *, quiet: bool = False):
    """The query-vector store, or None with a warning (the run goes on without it)."""
    from matcher.batch import open_query_cache

    store, problem = open_query_cache(model_dir)
    if problem and not quiet:
        err_console.print(
            f"[yellow]{problem}: 질의 벡터 캐시를 열 수 없어 캐시 없이 진행합니다. "
            "파일을 지우면 다시 만들어집니다.[/]",
            highlight=False,
        )
    return store


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

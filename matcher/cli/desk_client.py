"""How `matcher match` answers through a running desk (`matcher serve`) instead of loading the model.

Its own module: the match command imports it, and the serve command imports the match command's loader,
so living in either would make them import each other.
"""

from __future__ import annotations

import os

from matcher.cli.output import EXIT_INPUT, err_console, fail
from matcher.config import MatcherConfig


def answer_via_desk(cfg: MatcherConfig, text: str, top: int | None, server: str | None) -> dict | None:
    """The `matcher match --json` object from a running desk, or None to match in-process.

    With `server` (a URL) that desk is asked; otherwise the one whose server file names this exact
    config. A desk that is down falls back (with a notice); one that refuses the request is an error.
    """
    from matcher.serve.discovery import DeskRejected, DeskUnavailable, find_server, match_via_desk

    token = os.environ.get("MATCHER_TOKEN")
    if server is None:
        info = find_server(cfg)
        if info is None:
            return None
        server, token = info.url, info.token or token
    try:
        return match_via_desk(server, text, top=top, token=token)
    except DeskUnavailable as exc:
        err_console.print(f"[yellow]데스크에 연결하지 못해 직접 계산합니다[/] ({exc})", highlight=False)
        return None
    except DeskRejected as exc:
        fail(f"데스크가 요청을 거절했습니다 (HTTP {exc.status}): {exc}", EXIT_INPUT)

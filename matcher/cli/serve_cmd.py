"""`matcher serve`: the triage desk (pages + JSON API over one warm matcher).

How `matcher match` answers through a running desk is `matcher.cli.desk_client`.

Thin: the server lives in `matcher.serve`; fastapi and uvicorn are imported only when serving.
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from typing import Annotated

import typer

from matcher.cli.loading import load_matcher
from matcher.cli.options import ConfigOpt, SetOpt, cli_config
from matcher.cli.output import EXIT_FAILED, EXIT_INPUT, console, fail, user_errors
from matcher.config import MatcherConfig

TOKEN_RE = re.compile(r"^[A-Za-z0-9._~-]{16,}$")


def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(envvar="MATCHER_TOKEN", help="Access token every page and API call must carry."),
    ] = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    feedback_db: Annotated[Path, typer.Option(help="SQLite feedback store (as `matcher feedback`).")] = Path(
        "data/feedback.sqlite3"
    ),
    runs_dir: Annotated[Path, typer.Option(help="Evaluation runs shown on the evaluation page.")] = Path(
        "runs"
    ),
    work_dir: Annotated[
        Path | None, typer.Option(help="Uploaded backlogs and their results (default MODEL_DIR/desk).")
    ] = None,
    window_ms: Annotated[
        float, typer.Option(min=0, help="How long a request waits for others to share its encoder call.")
    ] = 2.0,
    max_batch: Annotated[
        int, typer.Option(min=1, help="Most requests in one encoder call (1: off; see docs/desk.md).")
    ] = 4,
    review_below: Annotated[
        float, typer.Option(min=0, max=1, help="Flag results below this confidence for a person's review.")
    ] = 0.3,
    announce: Annotated[
        bool,
        typer.Option(help="Write MODEL_DIR/desk.json so `matcher match` finds this desk (off: benchmarks)."),
    ] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the triage desk: Korean pages and a JSON API (OpenAPI at /docs) over one warm matcher.

    Loads the model, indexes and feedback store once. Binds 127.0.0.1 by default; any other address
    needs --token (or MATCHER_TOKEN), and then every call must send it (`Authorization: Bearer T`, or open
    any page once with `?token=T`). While it runs, `matcher match` with the same config answers through
    it. Exit codes: 0 stopped with Ctrl-C (SIGTERM: 143 after the same graceful shutdown), 1 could not
    bind, 2 bad option, 3 missing model or index state.
    """
    from matcher.serve.security import is_loopback

    if not is_loopback(host) and not token:
        fail(
            f"{host}: 루프백(127.0.0.1)이 아닌 주소에 열려면 "
            "접근 토큰(--token 또는 MATCHER_TOKEN)이 필요합니다 "
            "(binding a non-loopback address requires a token).",
            EXIT_INPUT,
        )
    if token is not None and not TOKEN_RE.match(token):
        fail(
            "--token: 16자 이상의 영문·숫자·._~- 문자여야 합니다 "
            "(the token must be 16+ characters of A-Z a-z 0-9 . _ ~ -).",
            EXIT_INPUT,
        )
    with user_errors():
        cfg = cli_config(config, overrides)
        sock = _bind(host, port)
        start = time.perf_counter()
        from matcher.serve.desk import Desk, DeskSettings

        settings = DeskSettings(
            feedback_db=feedback_db,
            work_dir=work_dir or Path(cfg.model_dir) / "desk",
            runs_dir=runs_dir,
            window_ms=window_ms,
            max_batch=max_batch,
            review_below=review_below,
        )
        matcher = load_matcher(cfg)
        matcher.warm_up()  # models load on first use; the first request should not pay for it
        desk = Desk(matcher, settings)
    _run(desk, cfg, config, sock, token, log_level, time.perf_counter() - start, announce)


def _bind(host: str, port: int) -> socket.socket:
    """Bind before loading the model, so a taken port fails in a second, not after the load."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        fail(f"{host}:{port}에 열 수 없습니다 (cannot bind: {exc.strerror}).", EXIT_FAILED)
    return sock


def _source_digest(source: str | None) -> str | None:
    from matcher.config_source import config_text, source_digest

    found = config_text(source)
    return source_digest(found[1]) if found else None


def _run(
    desk,
    cfg: MatcherConfig,
    source: str | None,
    sock: socket.socket,
    token: str | None,
    log_level: str,
    load_s: float,
    announce: bool,
):
    import uvicorn

    from matcher.serve.app import create_app
    from matcher.serve.discovery import ServerInfo, config_fingerprint, remove_server_file, write_server_file

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}"
    from matcher.serve.security import is_loopback, loopback_hosts

    done = False

    def cleanup() -> None:
        nonlocal done
        if done:
            return
        done = True
        if announce:
            remove_server_file(cfg, os.getpid())
        desk.close()

    app = create_app(
        desk,
        token=token,
        allowed_hosts=loopback_hosts(host) if is_loopback(host) else None,
        on_shutdown=cleanup,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=5)
    )
    sock.listen(2048)
    info = ServerInfo(
        url, os.getpid(), config_fingerprint(cfg), token, _source_digest(source), cfg.max_text_chars
    )
    path = write_server_file(cfg, info) if announce else None
    console.print(
        f"[green]✓[/] 데스크 준비 완료: {url}  (레코드 {len(desk.matcher.indexes.records)}건, "
        f"로딩 {load_s:.1f}s, 피드백 {desk.settings.feedback_db}){' · 토큰 필요' if token else ''}",
        highlight=False,
    )
    if path is not None:
        console.print(
            f"[dim]{path}에 주소를 적었습니다: 같은 설정의 `matcher match`가 이 데스크로 답합니다.[/]"
        )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown
        pass
    finally:
        cleanup()
        sock.close()
    console.print("데스크를 멈췄습니다 (stopped).")

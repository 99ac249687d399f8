"""Printing helpers shared by the commands: JSON for programs, rich for people, problems on stderr.

One error path: every user-facing error goes through `user_errors` or `fail`; people get a red line
on stderr, and under `--json` programs also get `{"error": message, "code": exit code}` on stdout
(input errors add `"problems"`). Exit codes: 0 ok, 1 failed, 2 bad input, 3 missing model or index.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NoReturn

import typer
from rich.console import Console

from matcher.encoders.registry import ModelNotFound
from matcher.index_store import StaleIndex
from matcher.problems import InputError

console = Console()
err_console = Console(stderr=True)

EXIT_OK = 0
EXIT_FAILED = 1
"""The command ran but its result is a failure (e.g. a check did not pass)."""
EXIT_INPUT = 2
"""Bad input: a file, line or field is wrong; every problem is printed."""
EXIT_STATE = 3
"""Missing or stale state the user must create first (model not installed, index stale)."""


class StateError(Exception):
    """A missing model or a stale index: the message says which command fixes it."""


_json_errors: ContextVar[bool] = ContextVar("json_errors", default=False)
"""Set by `user_errors(as_json=True)`: `fail` then also prints its error as JSON."""


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def fail(message: str, code: int = EXIT_FAILED, *, as_json: bool | None = None) -> NoReturn:
    """Print the error (also as JSON on stdout under `--json`) and exit with `code`."""
    if _json_errors.get() if as_json is None else as_json:
        print_json({"error": message, "code": code})
    err_console.print(f"[bold red]오류:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors(as_json: bool = False) -> Iterator[None]:
    """Turn input and state errors into a clear message and an exit code, never a traceback."""
    token = _json_errors.set(as_json)
    try:
        yield
    except InputError as exc:
        if as_json:
            print_json(
                {
                    "error": "invalid input",
                    "code": EXIT_INPUT,
                    "problems": [p.to_dict() for p in exc.problems],
                }
            )
        for problem in exc.problems:
            err_console.print(f"[red]✗[/] {problem}", highlight=False, soft_wrap=True)
        err_console.print(f"[bold red]{len(exc.problems)}개 문제[/]가 있습니다 (problems found).")
        raise typer.Exit(EXIT_INPUT) from None
    except StateError as exc:
        fail(str(exc), EXIT_STATE, as_json=as_json)
    except ModelNotFound as exc:
        fail(
            f"모델이 없습니다: {exc} (e5_model: a directory under model_dir or a local path; "
            "`matcher model list`, `matcher model install`)",
            EXIT_STATE,
            as_json=as_json,
        )
    except StaleIndex as exc:
        fail(
            f"색인이 최신이 아닙니다: {exc}. `matcher index build`를 실행하세요.", EXIT_STATE, as_json=as_json
        )
    except KeyboardInterrupt:
        err_console.print("중단되었습니다 (interrupted).")
        raise typer.Exit(130) from None
    finally:
        _json_errors.reset(token)


def progress_callback(description: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A rich progress bar on a terminal, nothing otherwise: returns (update(done, total), close())."""
    if not err_console.is_terminal:
        return (lambda done, total: None), (lambda: None)
    from rich.progress import BarColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "{task.completed}/{task.total}",
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    progress.start()
    task = progress.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return update, progress.stop

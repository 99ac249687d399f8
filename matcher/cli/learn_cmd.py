"""`matcher train ...` and `matcher feedback ...`: learn from past cases and record triage verdicts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from matcher.cli.loading import load_matcher, query_store
from matcher.cli.options import ConfigOpt, JsonFlag, SetOpt, cli_config
from matcher.cli.output import (
    EXIT_INPUT,
    console,
    err_console,
    fail,
    print_json,
    progress_callback,
    user_errors,
)
from matcher.datasets import iter_jsonl, load_labeled
from matcher.threads import auto_threads, torch_threads

train_app = typer.Typer(
    help="Learn from past cases: fine-tune the encoder, fit the re-ranker.", no_args_is_help=True
)
feedback_app = typer.Typer(help="Record and export triage staff's verdicts (SQLite).", no_args_is_help=True)

TrainOpt = Annotated[
    Path, typer.Option("--train", "-t", help="Labeled training requests (JSONL); never the dev set.")
]
TRAIN_DEFAULT = Path("data/requests/train.jsonl")
REAL_TRAIN_DEFAULT = Path("data/requests/real-train.jsonl")
DEV_SETS = (Path("data/requests/dev.jsonl"), Path("data/requests/real-dev.jsonl"))
DbOpt = Annotated[Path, typer.Option("--db", help="Feedback database (SQLite file).")]


def _guard_dev(train: Path, dev: Path | None = None) -> None:
    """Refuse to train on the dev set (same file, or any dev request text among the training texts)."""
    if not train.is_file():
        fail(f"{train}: 파일이 없습니다 (file not found)", EXIT_INPUT)
    if dev is None:
        if "dev" in train.name:
            err_console.print("[yellow]경고: dev 세트로 학습하면 dev 수치는 더 이상 공정하지 않습니다.[/]")
        return
    if not dev.is_file():
        fail(f"{dev}: 파일이 없습니다 (file not found)", EXIT_INPUT)
    if train.resolve() == dev.resolve():
        fail("--train과 --dev가 같은 파일입니다 (never train on dev).", EXIT_INPUT)
    texts = {json.loads(raw).get("text") for _, raw in iter_jsonl(train)}
    shared = sum(1 for _, raw in iter_jsonl(dev) if json.loads(raw).get("text") in texts)
    if shared:
        fail(f"dev 요청 {shared}건이 학습 데이터에 있습니다 (dev leaks into --train).", EXIT_INPUT)


def _stage(name: str):
    """A progress display for one stage of a library job (the stage name is shown first)."""
    err_console.print(f"[dim]{name}…[/]")
    return progress_callback(name)


# ---------------------------------------------------------------------- train encoder
@train_app.command("encoder")
def train_encoder(
    train: TrainOpt = Path("data/requests/train.jsonl"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to save the model (models/NAME).")] = Path(
        "models/e5-small-ft"
    ),
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the pairs.")] = 1,
    max_pairs: Annotated[int, typer.Option(min=1, help="At most this many (request, record) pairs.")] = 2000,
    batch_size: Annotated[int, typer.Option(min=2, help="Pairs per step (in-batch negatives).")] = 16,
    time_budget: Annotated[
        float | None, typer.Option("--time-budget", help="Stop training cleanly after this many seconds.")
    ] = None,
    dev: Annotated[
        Path | None, typer.Option("--dev", help="Labeled dev requests: e5 metrics before/after in the card.")
    ] = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Fine-tune the config's e5 model on (request, gold-institute record) pairs with hard negatives.

    CPU only (bf16 autocast). Saves a sentence-transformers directory with README.md and
    model_card_data.json; use it with `e5_model = "OUT"` in a config (the index is rebuilt on first use).
    JSON shape: {"out", "pairs", "steps", "steps_planned", "seconds", "stopped_by_time_budget", "dev"}.
    """
    from matcher.learning.finetune import fine_tune_encoder

    _guard_dev(train, dev)
    with user_errors(as_json), torch_threads(auto_threads()):
        summary = fine_tune_encoder(
            cli_config(config, overrides),
            train,
            out,
            epochs=epochs,
            max_pairs=max_pairs,
            batch_size=batch_size,
            time_budget_s=time_budget,
            dev=dev,
            stage=_stage,
        )
    if as_json:
        print_json(summary)
        return
    note = " (시간 예산으로 중단)" if summary["stopped_by_time_budget"] else ""
    console.print(
        f"[green]✓[/] 학습 완료: {summary['pairs']}쌍, {summary['steps']}/{summary['steps_planned']} step,"
        f" {summary['seconds']}s{note} → {out}"
    )
    if summary["dev"]:
        d = summary["dev"]
        console.print(
            "dev (e5 단독): "
            + ", ".join(f"{k} {d['before'][k]:.3f}→{d['after'][k]:.3f}" for k in ("hit@1", "mrr"))
        )
    console.print(f'설정에 [bold]e5_model = "{out}"[/]를 쓰면 다음 실행 때 색인이 다시 만들어집니다.')


# ---------------------------------------------------------------------- train reranker
@train_app.command("reranker")
def train_reranker(
    train: Annotated[
        list[Path] | None,
        typer.Option(
            "--train",
            "-t",
            help="Labeled training requests (JSONL), repeatable; never a dev set. "
            "Default: data/requests/train.jsonl and real-train.jsonl.",
        ),
    ] = None,
    select_on: Annotated[
        Path | None,
        typer.Option(
            "--select-on",
            help="The --train set whose held-out CV MRR chooses C and its own weight (default: "
            "real-train.jsonl when trained on; else every set).",
        ),
    ] = None,
    weights: Annotated[
        list[float] | None,
        typer.Option("--weight", help="Weights tried for the --select-on set's requests (repeatable)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the model (JSON).")] = Path(
        "models/reranker.json"
    ),
    folds: Annotated[int, typer.Option(min=2, help="GroupKFold folds (groups = requests).")] = 5,
    without: Annotated[
        list[str] | None,
        typer.Option(
            "--without",
            help="A feature group the model leaves out (repeatable): cards, region, profile+programme, "
            "per-kind hits, prior.",
        ),
    ] = None,
    query_cache: Annotated[
        bool,
        typer.Option(
            "--query-cache",
            help="Reuse query vectors stored by earlier runs, so the features are those `matcher evaluate "
            "--query-cache` sees (int8 e5 vectors vary slightly with the batch they were encoded in).",
        ),
    ] = False,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Fit the learned re-ranker (logistic regression over per-institute features) on the TRAIN sets.

    C (and the weight of the --select-on set, e.g. the few real cases among many synthetic ones) is
    chosen by cross-validated MRR on that set's held-out requests; the model is saved as JSON (no
    pickle). Use it with `reranker = "OUT"` in the SAME config it was trained with. JSON shape: {"out",
    "C", "weight", "cv_mrr", "cv_hit@1", "cv_hit@3", "base_mrr", "base_hit@1", "base_hit@3", "cv_by_C",
    "cv_by_weight", "coefficients", "n_requests", "n_ranked", "n_selected_on", ...}.
    """
    import numpy as np

    from matcher.learning.reranker import collect, concat, fit_reranker

    trains = list(train) if train else [TRAIN_DEFAULT, REAL_TRAIN_DEFAULT]
    if select_on is None and REAL_TRAIN_DEFAULT in trains:
        select_on = REAL_TRAIN_DEFAULT
    if select_on is not None and select_on not in trains:
        fail(
            f"--select-on {select_on}: --train 중 하나여야 합니다 (must be one of the --train sets).",
            EXIT_INPUT,
        )
    for path in trains:
        _guard_dev(path)
        for dev in DEV_SETS:
            if dev.is_file():
                _guard_dev(path, dev)
    with user_errors(as_json), torch_threads(auto_threads()):
        cfg = cli_config(config, overrides).replace(reranker=None)
        matcher = load_matcher(cfg)
        store = query_store(cfg.model_dir, quiet=as_json) if query_cache else None
        if store is not None:
            matcher = matcher.with_query_cache(store)
        start = time.perf_counter()
        parts = []
        for path in trains:
            golds = load_labeled(path, matcher.catalog, strict=False)
            update, close = progress_callback(f"특징 추출 ({path.name})")
            try:
                parts.append(collect(matcher, golds, progress=update))
            finally:
                close()
        data = concat(parts)
        chosen = None
        if select_on is not None:
            chosen = np.concatenate(
                [
                    np.full(len(p.request_ids), path == select_on)
                    for path, p in zip(trains, parts, strict=True)
                ]
            )
        update, close = progress_callback("교차검증 (GroupKFold)")
        try:
            model, report = fit_reranker(
                data,
                folds=folds,
                seed=cfg.seed,
                weighted=chosen if len(trains) > 1 else None,
                weight_grid=tuple(weights or (1.0, 3.0, 10.0, 30.0)),
                select=chosen,
                without=tuple(without or ()),
                progress=update,
            )
        except ValueError as exc:
            fail(f"{', '.join(map(str, trains))}: {exc}", EXIT_INPUT)
        finally:
            close()
        model.meta.update(
            train=[str(t) for t in trains],
            selected_on=str(select_on) if select_on else None,
            config=cfg.name,
            retrievers=list(cfg.retrievers),
            e5_model=cfg.e5_model,
            catalog_hash=matcher.catalog.content_hash,
            seconds=round(time.perf_counter() - start, 1),
        )
        model.save(out)
    summary = {"out": str(out), **model.meta}
    if as_json:
        print_json(summary)
        return
    console.print(
        f"[green]✓[/] 재순위 모델: C={report['C']}, 가중치 {report['weight']},"
        f" 교차검증 MRR {report['cv_mrr']:.3f}"
        f" (재순위 없이 {report['base_mrr']:.3f}), hit@1 {report['cv_hit@1']:.3f}"
        f" ({report['base_hit@1']:.3f}), hit@3 {report['cv_hit@3']:.3f} ({report['base_hit@3']:.3f}) → {out}"
    )
    console.print(f'설정에 [bold]reranker = "{out}"[/]를 더해 쓰세요 (같은 설정으로 학습된 모델만).')


# ---------------------------------------------------------------------- feedback
@feedback_app.command("add")
def feedback_add(
    request: Annotated[str, typer.Option("--request", "-r", help="Request id.")],
    text: Annotated[
        str | None, typer.Option("--text", help="Request text (required the first time).")
    ] = None,
    accepted: Annotated[
        list[str] | None, typer.Option("--accepted", "-a", help="Institute accepted (id or name); repeat.")
    ] = None,
    rejected: Annotated[
        list[str] | None, typer.Option("--rejected", "-x", help="Institute rejected (id or name); repeat.")
    ] = None,
    db: DbOpt = Path("data/feedback.sqlite3"),
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Record triage verdicts for a request (the latest verdict per institute wins)."""
    from matcher.catalog import load_catalog
    from matcher.feedback import FeedbackStore, resolve_labels
    from matcher.problems import InputError

    with user_errors(as_json):
        catalog = load_catalog(cli_config(config, overrides).catalog_dir)
        problems, ok, no = [], [], []
        for option, labels, into in (("--accepted", accepted, ok), ("--rejected", rejected, no)):
            try:
                into += resolve_labels(catalog, labels or [], option)
            except InputError as exc:
                problems += exc.problems
        if problems:
            raise InputError(problems)
        with FeedbackStore(db) as store:
            fb = store.add(request, text, ok, no)
    if as_json:
        print_json({"id": fb.request_id, "accepted": list(fb.accepted), "rejected": list(fb.rejected)})
    else:
        console.print(
            f"[green]✓[/] {fb.request_id}: 수용 {', '.join(fb.accepted) or '-'}"
            f" · 거절 {', '.join(fb.rejected) or '-'}"
        )


@feedback_app.command("list")
def feedback_list(db: DbOpt = Path("data/feedback.sqlite3"), as_json: JsonFlag = False) -> None:
    """Every request with feedback.

    JSON shape: {"feedback": [{"id", "text", "accepted", "rejected", "updated"}]}.
    """
    from matcher.feedback import FeedbackStore

    with user_errors(as_json), FeedbackStore(db) as store:
        rows = store.all()
    if as_json:
        print_json(
            {
                "feedback": [
                    {
                        "id": f.request_id,
                        "text": f.text,
                        "accepted": list(f.accepted),
                        "rejected": list(f.rejected),
                        "updated": f.updated,
                    }
                    for f in rows
                ]
            }
        )
        return
    table = Table(title=f"피드백 ({db}, {len(rows)}건)")
    for col in ("id", "요청", "수용", "거절", "갱신"):
        table.add_column(col)
    for f in rows:
        short = f.text if len(f.text) <= 40 else f.text[:39] + "…"
        table.add_row(f.request_id, short, ", ".join(f.accepted), ", ".join(f.rejected), f.updated)
    console.print(table)


@feedback_app.command("export")
def feedback_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Labeled JSONL to write.")],
    db: DbOpt = Path("data/feedback.sqlite3"),
    gold_only: Annotated[
        bool,
        typer.Option(
            "--gold-only", help="Leave out requests with only rejections (load_labeled reads them as no-fit)."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Export as LabeledRequest JSONL: accepted institutes are gold; rejections go in a `rejected` field.

    Requests with only rejections are written without gold (use --gold-only to leave them out).
    JSON shape: {"path", "written", "with_gold", "rejected_only", "skipped"}.
    """
    from matcher.feedback import FeedbackStore

    with user_errors(as_json), FeedbackStore(db) as store:
        report = store.export(out, gold_only=gold_only)
    if as_json:
        print_json(report.__dict__)
        return
    console.print(
        f"[green]✓[/] {report.written}건 → {out} (정답 있음 {report.with_gold},"
        f" 거절만 {report.rejected_only}{', 제외됨' if gold_only else ''})"
    )

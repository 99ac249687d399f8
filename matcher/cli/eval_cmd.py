"""`matcher evaluate`, `matcher compare`, `matcher tune`: measure, compare and tune on labeled requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from matcher.atomic import write_text_atomic
from matcher.batch import open_query_cache
from matcher.cli.loading import load_matcher
from matcher.cli.options import ConfigOpt, JsonFlag, SetOpt, TopOpt, cli_config
from matcher.cli.output import (
    console,
    err_console,
    print_json,
    progress_callback,
    user_errors,
)
from matcher.config import PRESETS
from matcher.datasets import load_labeled
from matcher.evaluation.compare import compare_run_dirs
from matcher.evaluation.metrics import JOINT_METRICS, RANKING_METRICS
from matcher.evaluation.report import ABSTAIN_KEYS, fmt, write_run_dir
from matcher.evaluation.runner import run, summarize
from matcher.threads import auto_threads, torch_threads

BASELINES = ("tfidf", "bm25", "use", "dense", "hybrid-base", "hybrid")
EVAL_TOP = 10
"""Without --top, evaluation ranks at least this deep, so MRR sees past the recommendations shown."""
DEFAULT_SETS = (Path("data/requests/dev.jsonl"), Path("data/requests/real-dev.jsonl"))
"""What `matcher evaluate` reports with no --dataset: synthetic dev and real-dev side by side."""
DatasetOpt = Annotated[Path, typer.Option("--dataset", "-d", help="Labeled requests (JSONL).")]
DatasetsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--dataset",
        "-d",
        help="Labeled requests (JSONL), repeatable. Default: data/requests/dev.jsonl and real-dev.jsonl.",
    ),
]


def set_name(dataset: Path) -> str:
    """A dataset's short name in tables, JSON keys and run sub-directories: the file stem."""
    return dataset.stem


def _evaluate_sets(
    config_name: str | None,
    datasets: list[Path],
    out: Path | None,
    one_at_a_time: bool,
    top: int | None,
    overrides: list[str] | None,
    query_cache: bool = False,
) -> dict[str, dict]:
    """One matcher (loaded once), every dataset; with several, each run goes to `out/<name>`."""
    cfg = cli_config(config_name, overrides, top=top)
    if top is None:
        cfg = cfg.replace(top=max(cfg.top, EVAL_TOP))
    matcher = load_matcher(cfg)
    if query_cache:
        store, problem = open_query_cache(cfg.model_dir)
        if problem:
            err_console.print(f"[yellow]질의 캐시를 쓰지 않습니다: {problem}[/]")
        if store is not None:
            matcher = matcher.with_query_cache(store)
    golds = {set_name(d): (d, load_labeled(d, matcher.catalog, strict=False)) for d in datasets}
    summaries = {}
    for name, (dataset, gold) in golds.items():
        update, close = progress_callback(f"평가 ({cfg.name}, {name})")
        try:
            rows, results = run(matcher, gold, one_at_a_time=one_at_a_time, progress=update)
        finally:
            close()
        summary = summarize(rows, seed=cfg.seed)
        summary["config"] = cfg.model_dump()
        summary["dataset"] = str(dataset)
        if out is not None:
            write_run_dir(out / name if len(datasets) > 1 else out, summary, rows, results, cfg, str(dataset))
        summaries[name] = summary
    return summaries


def evaluate(
    dataset: DatasetsOpt = None,
    config: ConfigOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write report.md, results.jsonl, config.toml, summary.json, qrels.txt and run.txt here "
            "(one sub-directory per dataset when there are several).",
        ),
    ] = None,
    baselines: Annotated[
        bool, typer.Option("--baselines", help=f"Run {', '.join(BASELINES)} and print one table.")
    ] = False,
    batched: Annotated[
        bool, typer.Option("--batched", help="Encode in batches (faster; latency is then per batch).")
    ] = False,
    top: TopOpt = None,
    query_cache: Annotated[
        bool,
        typer.Option(
            "--query-cache",
            help="Reuse query vectors stored by earlier runs (same rankings; latencies then not comparable).",
        ),
    ] = False,
    overrides: SetOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the matcher on every labeled request and report metrics with 95% bootstrap intervals.

    With no --dataset: synthetic dev and real-dev side by side. JSON shape for one dataset:
    {"n", "metrics": {"hit@1", "hit@3", "hit@5", "recall@3", "recall@5", "mrr", "ndcg@5",
    "full_cover@1", "full_cover@3", "jaccard@1", "team_first", "abstain_precision", "abstain_recall",
    "abstain_rate"}, "ci95": {...}, "per_institute": {...}, "per_industry": {...}, "confusions": [...],
    "latency_ms", "config": {...}}; for several: {"datasets": {name: summary}}; with --baselines:
    {"baselines": {name: summary}} (several datasets: {"baselines": {name: {dataset: summary}}}).
    """
    datasets = list(dataset) if dataset else list(DEFAULT_SETS)
    several = len(datasets) > 1
    with user_errors(as_json), torch_threads(auto_threads()):
        if baselines:
            found: dict[str, dict[str, dict]] = {}
            for name in BASELINES:
                err_console.print(f"[dim]baseline {name}…[/]")
                found[name] = _evaluate_sets(
                    name, datasets, out / name if out else None, not batched, top, overrides, query_cache
                )
            if as_json:
                print_json(
                    {"baselines": found if several else {n: next(iter(s.values())) for n, s in found.items()}}
                )
            else:
                for set_key in found[BASELINES[0]]:
                    _baseline_table({n: s[set_key] for n, s in found.items()}, set_key)
            return
        summaries = _evaluate_sets(config, datasets, out, not batched, top, overrides, query_cache)
    if as_json:
        print_json({"datasets": summaries} if several else next(iter(summaries.values())))
        return
    if several:
        _side_by_side_table(summaries)
    else:
        _summary_table(next(iter(summaries.values())))
    if out:
        console.print(f"보고서: {out / '*' / 'report.md' if several else out / 'report.md'}")


def _interval(ci: dict, name: str) -> str:
    interval = ci.get(name)
    return f"{fmt(interval[0])} – {fmt(interval[1])}" if interval else ""


def _side_by_side_table(summaries: dict[str, dict]) -> None:
    first = next(iter(summaries.values()))
    table = Table(
        title=f"평가: {first['config']['name']} — "
        + ", ".join(f"{name} (n={s['n']})" for name, s in summaries.items())
    )
    table.add_column("metric")
    for name in summaries:
        table.add_column(name, justify="right")
        table.add_column("95% CI", justify="right")
    for metric in (*RANKING_METRICS, *JOINT_METRICS, *ABSTAIN_KEYS):
        cells = []
        for s in summaries.values():
            cells += [fmt(s["metrics"][metric]), _interval(s["ci95"], metric)]
        table.add_row(metric, *cells)
    console.print(table)
    for name, s in summaries.items():
        lat = s["latency_ms"]
        console.print(f"{name}: 지연시간 p50 {lat['p50']:.0f} ms · p95 {lat['p95']:.0f} ms")


def _summary_table(summary: dict) -> None:
    m, ci = summary["metrics"], summary["ci95"]
    table = Table(title=f"평가: {summary['config']['name']} — {summary['dataset']} (n={summary['n']})")
    for col in ("metric", "value", "95% CI"):
        table.add_column(col)
    for name in (*RANKING_METRICS, *JOINT_METRICS, *ABSTAIN_KEYS):
        table.add_row(name, fmt(m[name]), _interval(ci, name))
    console.print(table)
    lat = summary["latency_ms"]
    console.print(f"지연시간 p50 {lat['p50']:.0f} ms · p95 {lat['p95']:.0f} ms")


def _baseline_table(summaries: dict, dataset: str) -> None:
    table = Table(title=f"베이스라인 비교 — {dataset}")
    table.add_column("metric")
    for name in summaries:
        table.add_column(name, justify="right")
    for metric in (*RANKING_METRICS, *JOINT_METRICS, *ABSTAIN_KEYS):
        table.add_row(metric, *(fmt(s["metrics"][metric]) for s in summaries.values()))
    table.add_row("p50 ms", *(f"{s['latency_ms']['p50']:.0f}" for s in summaries.values()))
    console.print(table)


def _compare_table(title: str, out: dict[str, dict]) -> None:
    table = Table(title=title)
    for col in ("metric", "A", "B", "B−A", "95% CI", "p"):
        table.add_column(col, justify="right")
    for metric, v in out.items():
        table.add_row(
            metric,
            fmt(v["a"]),
            fmt(v["b"]),
            f"{v['diff']:+.3f}",
            f"{v['ci_low']:+.3f} – {v['ci_high']:+.3f}",
            f"{v['p_value']:.4f}",
        )
    console.print(table)


def compare(
    run_a: Annotated[Path, typer.Argument(help="Run directory (or results.jsonl) of the baseline.")],
    run_b: Annotated[Path, typer.Argument(help="Run directory (or results.jsonl) of the candidate.")],
    as_json: JsonFlag = False,
) -> None:
    """Per-metric difference B − A over the shared requests, with a paired bootstrap 95% interval and a
    paired randomisation test p-value. Runs of several datasets (`evaluate --out DIR` with no --dataset)
    are compared dataset by dataset.

    JSON: {"a", "b", "n_shared", "metrics": {metric: {"n", "a", "b", "diff", "ci_low", "ci_high",
    "p_value"}}}; for runs of several datasets {"a", "b", "sets": {name: {"n_shared", "metrics"}}}.
    Exit codes: 0 compared, 2 a run is missing or malformed, of another shape, or shares no request.
    """
    with user_errors(as_json):
        compared = compare_run_dirs(run_a, run_b)
    if as_json:
        head = {"a": str(run_a), "b": str(run_b)}
        print_json({**head, **compared[""]} if "" in compared else {**head, "sets": compared})
        return
    for name, result in compared.items():
        label = f" — {name}" if name else ""
        _compare_table(
            f"비교{label}: B={run_b} vs A={run_a} (공통 {result['n_shared']}건)", result["metrics"]
        )


def tune(
    dataset: DatasetOpt = Path("data/requests/train.jsonl"),
    config: ConfigOpt = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the tuned config and its report.")
    ] = Path("runs/tune"),
    trials: Annotated[int, typer.Option(help="Random configurations tried for the ranking knobs.")] = 80,
    folds: Annotated[int, typer.Option(help="Cross-validation folds (report only).")] = 5,
    overrides: SetOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Search fusion, aggregation, joint-planner and abstention knobs on the TRAINING set (never dev)."""
    from matcher.evaluation.tune import tune as run_tune

    if "dev" in dataset.name:
        err_console.print("[yellow]경고: dev 세트로 튜닝하면 dev 수치는 더 이상 공정하지 않습니다.[/]")
    with user_errors(as_json), torch_threads(auto_threads()):
        cfg = cli_config(config, overrides)
        matcher = load_matcher(cfg)
        golds = load_labeled(dataset, matcher.catalog)
        update, close = progress_callback("튜닝")
        try:
            result = run_tune(
                matcher,
                golds,
                trials=trials,
                folds=folds,
                seed=cfg.seed,
                progress=lambda stage, d, t: update(d, t),
            )
        finally:
            close()
    out.mkdir(parents=True, exist_ok=True)
    result["config"].save(out / "tuned.toml")
    report = {**result["report"], "dataset": str(dataset), "base_config": cfg.name}
    write_text_atomic(out / "tune_report.json", json.dumps(report, ensure_ascii=False, indent=2, default=str))
    if as_json:
        print_json({**report, "config_path": str(out / "tuned.toml")})
    else:
        console.print_json(json.dumps(report, ensure_ascii=False, default=str))
        console.print(f"[green]✓[/] 튜닝된 설정: {out / 'tuned.toml'}")


__all__ = ["PRESETS", "compare", "evaluate", "tune"]

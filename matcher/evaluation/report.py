"""Writing an evaluation run to disk: summary JSON, Markdown report, per-request JSONL, config, TREC files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from matcher.atomic import write_text_atomic
from matcher.config import MatcherConfig
from matcher.evaluation.metrics import JOINT_METRICS, RANKING_METRICS
from matcher.evaluation.runner import EvalRow
from matcher.evaluation.trec import write_qrels, write_run
from matcher.result import MatchResult

ABSTAIN_KEYS = ("abstain_precision", "abstain_recall", "abstain_rate")


def fmt(x: float) -> str:
    return "—" if x != x else f"{x:.3f}"  # NaN -> dash


def markdown_report(summary: dict, dataset: str, config: MatcherConfig) -> str:
    m, ci = summary["metrics"], summary["ci95"]
    lines = [
        f"# 평가 보고서 — `{config.name}` on `{dataset}`",
        "",
        f"요청 {summary['n']}건 (순위 평가 {summary['n_ranked']}건, 복수 기관 {summary['n_multi']}건, "
        f"해당 기관 없음 {summary['n_empty']}건). 지연시간 p50 {summary['latency_ms']['p50']:.0f} ms, "
        f"p95 {summary['latency_ms']['p95']:.0f} ms.",
        "",
        "| metric | value | 95% CI |",
        "|---|---|---|",
    ]
    for name in (*RANKING_METRICS, *JOINT_METRICS, *ABSTAIN_KEYS):
        interval = ci.get(name)
        ci_text = f"{fmt(interval[0])} – {fmt(interval[1])}" if interval else ""
        lines.append(f"| {name} | {fmt(m[name])} | {ci_text} |")
    lines += [
        "",
        "## 기관별 재현율 (gold로 등장한 요청 기준)",
        "",
        "| 기관 | n | recall@1 | recall@3 | recall@5 |",
        "|---|---|---|---|---|",
    ]
    for inst, v in sorted(summary["per_institute"].items(), key=lambda kv: kv[1]["recall@3"]):
        lines.append(
            f"| {inst} | {v['n']} | {fmt(v['recall@1'])} | {fmt(v['recall@3'])} | {fmt(v['recall@5'])} |"
        )
    if summary["per_industry"]:
        lines += ["", "## 업종별", "", "| 업종 | n | hit@1 | mrr |", "|---|---|---|---|"]
        for ind, v in summary["per_industry"].items():
            lines.append(f"| {ind} | {v['n']} | {fmt(v['hit@1'])} | {fmt(v['mrr'])} |")
    if summary["confusions"]:
        lines += ["", "## 자주 틀린 조합 (정답 → 1순위 예측)", "", "| 정답 | 예측 | 건수 |", "|---|---|---|"]
        for c in summary["confusions"]:
            lines.append(f"| {c['gold']} | {c['predicted']} | {c['count']} |")
    if summary["unknown_labels"]:
        lines += ["", f"카탈로그에 없는 정답 라벨 (오답 처리): {', '.join(summary['unknown_labels'])}"]
    return "\n".join(lines) + "\n"


def write_run_dir(
    out: Path,
    summary: dict,
    rows: Sequence[EvalRow],
    results: Sequence[MatchResult],
    config: MatcherConfig,
    dataset: str,
) -> None:
    """Everything needed to reproduce and re-check a run, next to its numbers."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "summary.json", json.dumps(summary, ensure_ascii=False, indent=2))
    write_text_atomic(out / "report.md", markdown_report(summary, dataset, config))
    config.save(out / "config.toml")
    with open(out / "results.jsonl", "w", encoding="utf-8") as fh:
        for row, result in zip(rows, results, strict=True):
            record = row.to_dict()
            record["recommendations_detail"] = result.to_dict()["recommendations"]
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    write_qrels(out / "qrels.txt", ((r.id, r.gold) for r in rows if r.gold))
    write_run(out / "run.txt", ((r.id, r.ranked) for r in rows), tag=config.name)

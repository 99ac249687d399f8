"""Running a matcher over a labeled set and summarising: metrics, intervals, breakdowns, confusions."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from matcher.datasets import GoldRequest
from matcher.engine import Matcher
from matcher.evaluation.metrics import (
    JOINT_METRICS,
    MAIN_METRICS,
    RANKING_METRICS,
    abstention,
    request_metrics,
)
from matcher.evaluation.stats import bootstrap_ci
from matcher.result import MatchResult


@dataclass
class EvalRow:
    """One request's outcome: what was gold, what was ranked, and its metrics."""

    id: str
    gold: list[str]
    unknown: list[str]
    ranked: list[str]
    recommendations: list[list[str]]
    abstained: bool
    confidence: float
    latency_ms: float
    industry: str | None
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def make_row(gold: GoldRequest, result: MatchResult, latency_ms: float) -> EvalRow:
    ranked = result.ranked_institutes()
    recs = [list(r.institutes) for r in result.recommendations]
    # A gold label that names no catalog institute stays in the gold set and can never be ranked: a miss.
    gold_for_metrics = [*gold.gold, *(f"?{u}" for u in gold.unknown)]
    return EvalRow(
        id=gold.id,
        gold=list(gold.gold),
        unknown=list(gold.unknown),
        ranked=ranked,
        recommendations=recs,
        abstained=result.abstained,
        confidence=result.confidence,
        latency_ms=latency_ms,
        industry=gold.request.industry,
        metrics=request_metrics(ranked, recs, gold_for_metrics),
    )


def run(
    matcher: Matcher,
    golds: Sequence[GoldRequest],
    *,
    one_at_a_time: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[EvalRow], list[MatchResult]]:
    """Match every labeled request. One at a time (default) gives honest interactive latencies."""
    rows: list[EvalRow] = []
    results: list[MatchResult] = []
    step = 1 if one_at_a_time else 32
    for start in range(0, len(golds), step):
        chunk = golds[start : start + step]
        t0 = time.perf_counter()
        batch = matcher.match_batch([g.request for g in chunk])
        ms = (time.perf_counter() - t0) * 1000 / len(chunk)
        for g, r in zip(chunk, batch, strict=True):
            rows.append(make_row(g, r, ms))
            results.append(r)
        if progress:
            progress(len(rows), len(golds))
    return rows, results


def _mean(rows: Sequence[EvalRow], metric: str) -> tuple[float, np.ndarray]:
    values = np.array([r.metrics[metric] for r in rows if metric in r.metrics], dtype=np.float64)
    return (float(values.mean()) if len(values) else float("nan")), values


def summarize(rows: Sequence[EvalRow], *, seed: int = 13, n_resamples: int = 1000) -> dict:
    """The stable summary shape: n, metrics, ci95, per_institute, per_industry, confusions, latency."""
    metrics: dict[str, float] = {}
    ci95: dict[str, list[float]] = {}
    for name in (*RANKING_METRICS, *JOINT_METRICS):
        mean, values = _mean(rows, name)
        metrics[name] = mean
        if name in MAIN_METRICS or name in JOINT_METRICS:
            ci95[name] = list(bootstrap_ci(values, n_resamples=n_resamples, seed=seed))
    metrics.update(abstention([r.abstained for r in rows], [not r.gold and not r.unknown for r in rows]))

    per_institute: dict[str, dict] = {}
    by_inst: dict[str, list[EvalRow]] = defaultdict(list)
    for r in rows:
        for g in r.gold:
            by_inst[g].append(r)
    for inst, group in sorted(by_inst.items()):
        per_institute[inst] = {
            "n": len(group),
            "recall@1": float(np.mean([inst in r.ranked[:1] for r in group])),
            "recall@3": float(np.mean([inst in r.ranked[:3] for r in group])),
            "recall@5": float(np.mean([inst in r.ranked[:5] for r in group])),
        }
    per_industry: dict[str, dict] = {}
    by_ind: dict[str, list[EvalRow]] = defaultdict(list)
    for r in rows:
        if r.industry and r.metrics:
            by_ind[r.industry].append(r)
    for ind, group in sorted(by_ind.items()):
        per_industry[ind] = {
            "n": len(group),
            "hit@1": float(np.mean([r.metrics["hit@1"] for r in group])),
            "mrr": float(np.mean([r.metrics["mrr"] for r in group])),
        }
    confusions = Counter()
    for r in rows:
        if r.gold and r.ranked and r.ranked[0] not in r.gold:
            for g in r.gold:
                confusions[(g, r.ranked[0])] += 1
    latencies = np.array([r.latency_ms for r in rows]) if rows else np.zeros(1)
    return {
        "n": len(rows),
        "n_ranked": sum(1 for r in rows if r.metrics),
        "n_multi": sum(1 for r in rows if len(r.gold) + len(r.unknown) >= 2),
        "n_empty": sum(1 for r in rows if not r.gold and not r.unknown),
        "metrics": metrics,
        "ci95": ci95,
        "per_institute": per_institute,
        "per_industry": per_industry,
        "confusions": [{"gold": g, "predicted": p, "count": c} for (g, p), c in confusions.most_common(15)],
        "unknown_labels": sorted({u for r in rows for u in r.unknown}),
        "latency_ms": {
            "p50": float(np.percentile(latencies, 50)),
            "p95": float(np.percentile(latencies, 95)),
        },
    }

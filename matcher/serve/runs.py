"""The evaluation page's data: `matcher evaluate --out` runs found under a folder, newest first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HEADLINE = ("hit@1", "hit@3", "recall@3", "mrr", "ndcg@5", "full_cover@1", "abstain_rate")


@dataclass
class EvalRun:
    name: str
    path: str
    when: str
    dataset: str
    n: int
    metrics: dict[str, float]
    per_institute: list[tuple[str, int, float]]
    """(institute, n, recall@3), lowest recall first: where the matcher misses most."""
    latency: dict[str, float]


def find_runs(root: Path, limit: int = 10) -> list[EvalRun]:
    """Every folder under `root` (two levels deep) with a readable `summary.json`, newest first."""
    if not root.is_dir():
        return []
    found = [*root.glob("*/summary.json"), *root.glob("*/*/summary.json")]
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    runs = []
    for path in found[:limit]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            metrics = data["metrics"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        per = data.get("per_institute") or {}
        bars = sorted(
            ((inst, int(v.get("n", 0)), float(v.get("recall@3", 0.0))) for inst, v in per.items()),
            key=lambda b: (b[2], b[0]),
        )
        runs.append(
            EvalRun(
                name=str(path.parent.relative_to(root)),
                path=str(path.parent),
                when=datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC"),
                dataset=str(data.get("dataset", "")),
                n=int(data.get("n", 0)),
                metrics={k: float(metrics[k]) for k in HEADLINE if k in metrics},
                per_institute=bars,
                latency=data.get("latency_ms") or {},
            )
        )
    return runs

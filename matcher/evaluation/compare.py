"""Comparing two evaluation runs request by request: the statistics behind `matcher compare`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from matcher.datasets import iter_jsonl
from matcher.evaluation.metrics import JOINT_METRICS, RANKING_METRICS
from matcher.evaluation.stats import paired_test
from matcher.problems import InputError, Problem


def read_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Per-request metrics of a run directory (its results.jsonl) or a results.jsonl file.

    Raises:
        InputError: the file is missing, or a line is not a results line (with its line number).
    """
    path = Path(path)
    file = path / "results.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise InputError(
            [Problem(str(path), "results.jsonl이 없습니다 (run `matcher evaluate --out DIR` first)")]
        )
    rows, problems = {}, []
    for number, line in iter_jsonl(file):
        try:
            row = json.loads(line)
            rows[row["id"]] = row["metrics"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            problems.append(Problem(str(file), f"not a results line ({exc})", line=number))
    if problems:
        raise InputError(problems)
    return rows


def compare_runs(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> dict:
    """Per metric over the requests both runs share: mean of A, of B, and `paired_test` of B − A.

    Returns `{"n_shared", "metrics": {metric: {"n", "a", "b", "diff", "ci_low", "ci_high", "p_value"}}}`.
    """
    shared = sorted(set(a) & set(b))
    out = {}
    for metric in (*RANKING_METRICS, *JOINT_METRICS):
        ids = [i for i in shared if metric in a[i] and metric in b[i]]
        if not ids:
            continue
        va, vb = np.array([a[i][metric] for i in ids]), np.array([b[i][metric] for i in ids])
        out[metric] = {"n": len(ids), "a": float(va.mean()), "b": float(vb.mean()), **paired_test(va, vb)}
    return {"n_shared": len(shared), "metrics": out}


def run_sets(path: Path) -> dict[str, Path] | None:
    """The per-dataset runs of a several-dataset `evaluate --out DIR` (sub-directories with results),
    or None when `path` is itself one run."""
    if not path.is_dir() or (path / "results.jsonl").is_file():
        return None
    subs = {d.name: d for d in sorted(path.iterdir()) if (d / "results.jsonl").is_file()}
    return subs or None


def compare_run_dirs(run_a: str | Path, run_b: str | Path) -> dict[str, dict]:
    """`compare_runs` for two runs, or dataset by dataset for two several-dataset run directories.

    Returns `{name: compare_runs(...)}`, the name "" for two single runs.

    Raises:
        InputError: a run is missing or malformed, one is per-dataset and the other is not, or they
            share no request.
    """
    run_a, run_b = Path(run_a), Path(run_b)
    sets_a, sets_b = run_sets(run_a), run_sets(run_b)
    if (sets_a is None) != (sets_b is None):
        raise InputError(
            [
                Problem(
                    f"{run_a}, {run_b}",
                    "한쪽은 데이터셋별 실행 디렉터리, 다른 쪽은 단일 실행입니다: 같은 형태끼리 비교하세요",
                )
            ]
        )
    pairs = (
        {"": (run_a, run_b)}
        if sets_a is None or sets_b is None
        else {name: (sets_a[name], sets_b[name]) for name in sets_a if name in sets_b}
    )
    compared = {name: compare_runs(read_run(a), read_run(b)) for name, (a, b) in pairs.items()}
    if not any(c["n_shared"] for c in compared.values()):
        raise InputError(
            [Problem(f"{run_a}, {run_b}", "두 실행에 공통 요청이 없습니다 (no shared request ids)")]
        )
    return compared

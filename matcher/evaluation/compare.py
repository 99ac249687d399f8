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

    Raises:
        InputError: the runs share no request.
    """
    shared = sorted(set(a) & set(b))
    if not shared:
        raise InputError([Problem("compare", "두 실행에 공통 요청이 없습니다 (no shared request ids)")])
    out = {}
    for metric in (*RANKING_METRICS, *JOINT_METRICS):
        ids = [i for i in shared if metric in a[i] and metric in b[i]]
        if not ids:
            continue
        va, vb = np.array([a[i][metric] for i in ids]), np.array([b[i][metric] for i in ids])
        out[metric] = {"n": len(ids), "a": float(va.mean()), "b": float(vb.mean()), **paired_test(va, vb)}
    return {"n_shared": len(shared), "metrics": out}

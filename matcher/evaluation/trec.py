"""TREC qrels and run files, so ranx or trec_eval can check our numbers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def write_qrels(path: str | Path, gold: Iterable[tuple[str, Iterable[str]]]) -> None:
    """`query_id 0 institute 1` per gold institute."""
    with open(path, "w", encoding="utf-8") as fh:
        for qid, institutes in gold:
            for inst in institutes:
                fh.write(f"{qid} 0 {inst} 1\n")


def write_run(path: str | Path, runs: Iterable[tuple[str, list[str]]], tag: str = "matcher") -> None:
    """`query_id Q0 institute rank score tag`; the score decreases with rank so tools keep our order."""
    with open(path, "w", encoding="utf-8") as fh:
        for qid, ranked in runs:
            for rank, inst in enumerate(ranked, start=1):
                fh.write(f"{qid} Q0 {inst} {rank} {len(ranked) - rank + 1} {tag}\n")

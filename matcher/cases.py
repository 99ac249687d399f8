"""Published real routing cases as labeled requests, split into real-train and real-dev.

The cases (`shared/cases/public_cases.jsonl`) are the closest thing to what the desk receives, so
real-dev is the set we report on and never fit, tune or choose anything on. The split is stratified
by institute (each case counts for its first label) and needs no random generator: within an
institute, cases are ordered by a seeded SHA-256 of their id and the first `round(share * n)` go to
dev. So the split is the same on every machine and numpy version, and adding a case moves no other.

Regenerate with `python -m matcher.cases [PUBLIC_CASES.jsonl]` (writes `data/requests/real-*.jsonl`).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

DEV_SHARE = 0.4
SEED = "real-split-2026-12"
DEFAULT_SOURCE = Path("../shared/cases/public_cases.jsonl")
OUT_DIR = Path("data/requests")
EXTRA_FIELDS = ("source", "support_type", "year", "program", "notes")
"""Kept for error analysis only: `notes` and `program` may name the institute, and the matcher never
reads them (`Request` ignores unknown fields; only `title` and `text` are matched)."""


def to_labeled(case: dict) -> dict:
    """One published case in our labeled-request JSONL shape (`request` → `text`, `institutions` →
    `institutes`, Korean names as the source writes them: `Catalog.resolve` reads them)."""
    out = {"id": case["id"], "text": case["request"], "institutes": list(case["institutions"])}
    for key in ("region", "company", "industry"):
        if case.get(key):
            out[key] = case[key]
    for key in EXTRA_FIELDS:
        if case.get(key) not in (None, "", []):
            out[key] = case[key]
    return out


def _order_key(case_id: str, seed: str) -> str:
    return hashlib.sha256(f"{seed}:{case_id}".encode()).hexdigest()


def dev_count(n: int, share: float = DEV_SHARE) -> int:
    """Cases of an institute that go to dev: half-up rounding, so an institute with one case trains."""
    return math.floor(share * n + 0.5) if n > 1 else 0


def split(
    cases: Sequence[dict], *, share: float = DEV_SHARE, seed: str = SEED
) -> tuple[list[dict], list[dict]]:
    """(train, dev), each in input order. Stratum = the case's first institute label."""
    strata: dict[str, list[dict]] = defaultdict(list)
    for case in cases:
        strata[case["institutes"][0] if case["institutes"] else ""].append(case)
    dev_ids: set[str] = set()
    for group in strata.values():
        ranked = sorted(group, key=lambda c: _order_key(c["id"], seed))
        dev_ids |= {c["id"] for c in ranked[: dev_count(len(group), share)]}
    return [c for c in cases if c["id"] not in dev_ids], [c for c in cases if c["id"] in dev_ids]


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    source = Path(args[0]) if args else DEFAULT_SOURCE
    out_dir = Path(args[1]) if len(args) > 1 else OUT_DIR
    if not source.is_file():
        print(f"{source}: 파일이 없습니다 (public_cases.jsonl 경로를 주세요).", file=sys.stderr)
        return 2
    train, dev = split([to_labeled(c) for c in read_jsonl(source)])
    write_jsonl(out_dir / "real-train.jsonl", train)
    write_jsonl(out_dir / "real-dev.jsonl", dev)
    print(f"real-train {len(train)}건, real-dev {len(dev)}건 → {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

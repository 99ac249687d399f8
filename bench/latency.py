"""Interactive matching cost on the shipped catalog: index build time, single-request latency, memory.

Each config runs in its own subprocess (clean peak RSS), on the same requests, in the same run, so
the ratios against the BM25-only and dense-only baselines are fair:

    python bench/latency.py           # hybrid vs dense vs bm25 on data/requests/dev.jsonl
    python bench/latency.py --set e5_runtime=torch-fp32   # any config knob, for every config
    python bench/latency.py --smoke   # tiny correctness run for CI (fixture catalog, cheap encoder)

The first line printed is the CPU (model, cores, the flags that decide precision) and the e5 runtime
in use: a latency means little without them (docs/speed.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def measure(config_name: str, requests_path: str, n: int, fresh_index: bool, overrides: dict) -> dict:
    """Runs inside the child process: build (or load) the index, then time `n` single requests."""
    sys.path.insert(0, str(ROOT))
    from matcher.catalog_cache import catalog_of
    from matcher.config import load_config
    from matcher.datasets import load_labeled
    from matcher.engine import Matcher
    from matcher.index_store import build_indexes

    cfg = load_config(config_name, **overrides)
    catalog = catalog_of(cfg)
    t0 = time.perf_counter()
    if fresh_index:
        build_indexes(catalog, cfg)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    matcher = Matcher.from_config(cfg, rebuild=True)
    load_s = time.perf_counter() - t0
    golds = load_labeled(requests_path, catalog, strict=False)[:n]
    matcher.match(golds[0].request)  # warm-up: lazy model and tokenizer initialisation
    times = []
    for g in golds:
        t = time.perf_counter()
        result = matcher.match(g.request)
        times.append((time.perf_counter() - t) * 1000)
        assert result.recommendations, g.id
    e5 = matcher.indexes.retrievers.get("e5")
    return {
        "config": cfg.name,
        "e5_encoder": e5.encoder.id if e5 else "",  # type: ignore[attr-defined]
        "records": len(catalog.capabilities),
        "build_s": round(build_s, 3),
        "load_s": round(load_s, 3),
        "n": len(times),
        "p50_ms": round(float(np.percentile(times, 50)), 1),
        "p95_ms": round(float(np.percentile(times, 95)), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_child(config_name: str, args: argparse.Namespace, overrides: dict) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        config_name,
        "--requests",
        args.requests,
        "--n",
        str(args.n),
        "--overrides",
        json.dumps(overrides),
    ]
    if args.fresh:
        cmd.append("--fresh")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", default="hybrid,dense,bm25")
    parser.add_argument("--requests", default="data/requests/dev.jsonl")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument(
        "--fresh", action="store_true", help="Rebuild the index (embedding cache still applies)."
    )
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--set", action="append", default=[], help="A config knob, key=value (repeatable).")
    parser.add_argument("--child")
    parser.add_argument("--overrides", default="{}")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.requests, args.n, args.fresh, json.loads(args.overrides))))
        return
    sys.path.insert(0, str(ROOT))
    from matcher.config import parse_overrides
    from matcher.encoders.runtime import cpu_description

    overrides: dict = parse_overrides(args.set)
    cpu = cpu_description()
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores, flags {' '.join(cpu['flags']) or '-'}")
    if args.smoke:
        tmp = tempfile.mkdtemp()
        args.requests, args.n, args.fresh = "tests/fixtures/requests.jsonl", 12, True
        overrides |= {
            "catalog_dir": "tests/fixtures/catalog",
            "index_dir": f"{tmp}/index",
            "model_dir": tmp,
            "retrievers": ["hashing", "bm25"],
            "retriever_weights": [1.0, 1.0],
        }
        args.configs = "hybrid"
    rows = [run_child(name, args, overrides) for name in args.configs.split(",")]
    base = {r["config"]: r for r in rows}
    for r in rows:
        if r["e5_encoder"]:
            print(f"e5 encoder ({r['config']}): {r['e5_encoder']}")
    print(
        f"{'config':8} {'records':>7} {'build s':>8} {'load s':>7} {'p50 ms':>7} {'p95 ms':>7} {'RSS MB':>7} "
        f"{'p50 vs bm25':>11}"
    )
    for r in rows:
        ratio = r["p50_ms"] / base["bm25"]["p50_ms"] if "bm25" in base else float("nan")
        print(
            f"{r['config']:8} {r['records']:>7} {r['build_s']:>8} {r['load_s']:>7} {r['p50_ms']:>7} "
            f"{r['p95_ms']:>7} {r['peak_rss_mb']:>7} {ratio:>10.1f}x"
        )
    if args.smoke:
        assert rows[0]["n"] == 12 and rows[0]["p50_ms"] > 0
        print("smoke ok")


if __name__ == "__main__":
    main()

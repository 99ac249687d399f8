"""Batch throughput: `matcher batch`'s pipeline (`run_batch`) against one request at a time, and its memory.

Each measurement runs in its own subprocess (clean peak RSS from `resource.getrusage`), in the same
run, on the same synthetic requests (sentences of data/requests/*.jsonl recombined, seeded), over an
index built once beforehand into a temporary directory (nothing under models/ is touched):

    python bench/batch.py                      # hybrid: batch 1,000 and 10,000 requests vs one at a time
    python bench/batch.py --workdir /tmp/bb    # keep (and reuse) the index and embedding cache there
    python bench/batch.py --smoke              # CI: fixture catalog, hashing encoder, no timing

Batch rate counts the whole pipeline (read, validate, match in batches, write each line with a flush);
model loading is reported apart. The one-at-a-time baseline is `matcher.match(r)` in a loop over
--single-n requests. Both are measured at every encoder thread count of --threads (default 1 and 2) on
--single-n requests. The --sizes runs (throughput and peak memory) use the thread count `matcher batch`
chooses (`--threads 0`: the idle cores, re-checked every batch), or --size-threads.

Three batch modes: `batch` runs with no query cache at all (every query encoded: a new model, the
worst case); `fill` is a first run with an empty query cache (it also skips repeated sentences, which the
synthetic backlog has far more of than a real one, so its rate is shown but not claimed); `rerank` runs
again over the filled cache, as after a catalog or knob change (query vectors do not depend on the
catalog): no query is encoded.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def synth_requests(path: Path, n: int, seed: int = 7) -> None:
    """`n` requests, each one or two source requests' sentences recombined, streamed to a JSONL file."""
    texts = [
        json.loads(line)["text"]
        for source in sorted((ROOT / "data/requests").glob("*.jsonl"))
        for line in source.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    sentences = [[s for s in re.split(r"(?<=[.?!다요])\s+", t) if s.strip()] for t in texts]
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for k in range(n):
            parts = list(rng.choice(sentences))
            if rng.random() < 0.5:
                other = rng.choice(sentences)
                parts += rng.sample(other, max(1, len(other) // 2))
            fh.write(json.dumps({"id": f"syn-{k:06d}", "text": " ".join(parts)}, ensure_ascii=False) + "\n")


def _config(args: argparse.Namespace):
    from matcher.config import load_config

    return load_config(args.config, **json.loads(args.overrides))


def child(args: argparse.Namespace) -> dict:
    """Runs in the subprocess: load the matcher, then time one mode."""
    from matcher.batch import iter_rows, open_query_cache, run_batch
    from matcher.engine import Matcher
    from matcher.schema import Request
    from matcher.threads import auto_threads, batch_threads, batches_with_auto_threads, set_batch_threads

    set_batch_threads(args.threads or auto_threads())
    cfg = _config(args)
    t0 = time.perf_counter()
    matcher = Matcher.from_config(cfg, rebuild=False)
    if args.mode in ("fill", "rerank"):
        matcher = matcher.with_query_cache(open_query_cache(cfg.model_dir)[0])
    load_s = time.perf_counter() - t0
    matcher.match("워밍업: 금형 코팅 시험 문의")  # lazy model and tokenizer initialisation
    warmup = matcher.query_cache_counts()
    out = Path(args.workdir) / f"out-{args.mode}-{args.n}-{args.threads}.jsonl"
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    if args.mode == "single":
        done = 0
        with open(out, "w", encoding="utf-8") as fh:
            for row in iter_rows(args.input):
                if done >= args.n:
                    break
                result = matcher.match(Request.model_validate(row.data))
                fh.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
                done += 1
    else:
        summary = run_batch(
            batches_with_auto_threads(matcher, args.batch_size)
            if not args.threads
            else (lambda requests: matcher.match_many(requests, args.batch_size)),
            args.input,
            out,
            top=cfg.top,
            max_text_chars=cfg.max_text_chars,
        )
        assert summary.counts.errors == 0, summary.to_dict()
        done = summary.counts.done
    seconds = time.perf_counter() - start
    with open(out, encoding="utf-8") as fh:
        lines = sum(1 for _ in fh)
    assert lines == done, (lines, done)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cache = {k: v - warmup[k] for k, v in matcher.query_cache_counts().items()}
    return {
        "mode": args.mode,
        "encoded": cache["encoded"],
        "reused": cache["reused"],
        "n": done,
        "threads": batch_threads(),
        "load_s": round(load_s, 2),
        "seconds": round(seconds, 2),
        "rate": round(done / seconds, 2),
        "peak_rss_mb": round(rss, 1),
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }


def run_child(args: argparse.Namespace, mode: str, n: int, input_path: Path, threads: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--n",
        str(n),
        "--input",
        str(input_path),
        "--config",
        args.config,
        "--overrides",
        args.overrides,
        "--workdir",
        args.workdir,
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(threads),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"child {mode} n={n} failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def prepare(args: argparse.Namespace) -> None:
    """Build the index once (not timed) in a subprocess, so no measurement pays for it."""
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); from matcher.config import load_config;"
        "from matcher.engine import Matcher;"
        "Matcher.from_config(load_config(sys.argv[2], **json.loads(sys.argv[3])), rebuild=True)"
    )
    subprocess.run([sys.executable, "-c", code, str(ROOT), args.config, args.overrides], check=True, cwd=ROOT)


def _threads_label(row: dict, fixed: int) -> str:
    """A fixed count, or 'auto:N' with the count auto mode ended on."""
    return str(fixed) if fixed else f"auto:{row['threads']}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="hybrid", help="Preset or TOML file (default: hybrid).")
    parser.add_argument("--sizes", default="1000,10000", help="Batch sizes (requests), comma-separated.")
    parser.add_argument("--single-n", type=int, default=200, help="Requests for the one-at-a-time baseline.")
    parser.add_argument(
        "--threads", default="1,2", help="encoder thread counts compared on --single-n requests."
    )
    parser.add_argument(
        "--size-threads", type=int, default=0, help="Threads for --sizes runs (0: auto, as the command)."
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--input")
    parser.add_argument(
        "--workdir", help="Keep the index and embedding cache here to reuse them (default: new temp dir)."
    )
    parser.add_argument("--overrides", default="{}")
    parser.add_argument("--set", action="append", default=[], help="A config knob, key=value (repeatable).")
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        args.threads = int(args.threads)
        print(json.dumps(child(args)))
        return

    size_threads = args.size_threads
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-batch-"))
    workdir.mkdir(parents=True, exist_ok=True)
    args.workdir = str(workdir)
    overrides = {"index_dir": str(workdir / "index"), "model_dir": str(workdir)}
    if args.smoke:
        args.config, args.sizes, args.single_n, args.threads = "hybrid", "40", 10, "1"
        overrides |= {
            "catalog_dir": "tests/fixtures/catalog",
            "retrievers": ["hashing", "bm25"],
            "retriever_weights": [1.0, 1.0],
        }
    else:
        # The converted e5 model is reused from models/ when it is there (read-only), else converted here.
        default_e5 = ROOT / "models" / "e5-small"
        if (default_e5 / "modules.json").is_file():
            overrides["e5_model"] = str(default_e5)
    from matcher.config import parse_overrides
    from matcher.encoders.runtime import cpu_description

    overrides |= parse_overrides(args.set)
    cpu = cpu_description()
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores, flags {' '.join(cpu['flags']) or '-'}", flush=True)
    args.overrides = json.dumps(overrides)
    sizes = [int(s) for s in args.sizes.split(",")]

    prepare(args)
    input_path = workdir / "requests.jsonl"
    synth_requests(input_path, max([*sizes, args.single_n]))
    inputs = {}
    for n in sizes:
        inputs[n] = workdir / f"requests-{n}.jsonl"
        with open(input_path, encoding="utf-8") as src, open(inputs[n], "w", encoding="utf-8") as dst:
            for _, line in zip(range(n), src, strict=False):
                dst.write(line)

    thread_counts = [int(t) for t in args.threads.split(",")]
    small = workdir / "requests-single.jsonl"
    with open(input_path, encoding="utf-8") as src, open(small, "w", encoding="utf-8") as dst:
        for _, line in zip(range(args.single_n), src, strict=False):
            dst.write(line)
    single = {t: run_child(args, "single", args.single_n, small, t) for t in thread_counts}
    same_n = {t: run_child(args, "batch", args.single_n, small, t) for t in thread_counts}
    rows = [run_child(args, "batch", n, inputs[n], size_threads) for n in sizes]
    (workdir / "cache" / "queries.sqlite").unlink(missing_ok=True)
    for extra in (workdir / "cache").glob("queries.sqlite-*"):
        extra.unlink()
    fill = run_child(args, "fill", max(sizes), inputs[max(sizes)], size_threads)
    rerank = [run_child(args, "rerank", n, inputs[n], size_threads) for n in sizes]

    print(f"config {args.config}; requests synthesised from data/requests/*.jsonl (seed 7)")
    print(f"{'mode':6} {'threads':>7} {'n':>6} {'req/s':>7} {'seconds':>8} {'peak RSS MB':>11} {'load':>5}")
    for t in thread_counts:
        for r in (single[t], same_n[t]):
            print(
                f"{r['mode']:6} {t:>7} {r['n']:>6} {r['rate']:>7} {r['seconds']:>8} {r['peak_rss_mb']:>11} "
                f"{r['loadavg_1min']:>5}"
            )
    for r in [*rows, fill, *rerank]:
        print(
            f"{r['mode']:6} {_threads_label(r, size_threads):>7} {r['n']:>6} {r['rate']:>7} "
            f"{r['seconds']:>8} {r['peak_rss_mb']:>11} {r['loadavg_1min']:>5}"
            + (f"   queries encoded {r['encoded']}, reused {r['reused']}" if r["mode"] != "batch" else "")
        )
    base = single[min(thread_counts)]
    for r in [*rows, *rerank]:
        ratios = ", ".join(
            f"{r['rate'] / single[t]['rate']:.1f}x one-at-a-time at {t} thread(s)" for t in thread_counts
        )
        print(f"{r['mode']} {r['n']} ({_threads_label(r, size_threads)} threads): {ratios}")
    for label, group in (("batch", rows), ("rerank", rerank)):
        if len(group) >= 2:
            ratio = group[-1]["peak_rss_mb"] / group[0]["peak_rss_mb"]
            print(f"{label} peak memory {group[-1]['n']} vs {group[0]['n']} requests: {ratio:.2f}x")
    if args.smoke:
        assert base["n"] == 10 and all(r["n"] == 40 for r in rows), rows
        assert fill["encoded"] > 0 and all(r["encoded"] == 0 and r["reused"] > 0 for r in rerank), rerank
        print("smoke ok")


if __name__ == "__main__":
    main()

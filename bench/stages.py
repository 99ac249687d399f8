"""Where a request's time goes: per-stage milliseconds, one request at a time against batches.

Explains the batch benchmark (bench/batch.py): what batching can and cannot remove. Stages follow
`Matcher.match_batch`: prepare (needs), each dense retriever's encoding and FAISS search, Korean
tokenising and BM25 search, then `rank` (fusion, institute scores, teams, evidence) and JSON.

    python bench/stages.py                    # hybrid, 100 requests one at a time vs 512 in batches of 128
    python bench/stages.py --threads 2        # the same with 2 torch threads
    python bench/stages.py --variants         # + e5 tokens/s in float32, bf16 autocast, int8 dynamic
    python bench/stages.py --smoke            # CI: fixture catalog, hashing encoder

Requests are the synthetic backlog of bench/batch.py (seed 7). Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from batch import synth_requests  # noqa: E402


def stage_times(matcher, requests, batch_size: int) -> tuple[dict[str, float], int]:
    """Seconds per stage over `requests` matched in batches of `batch_size`, and the number of queries."""
    cfg, idx = matcher.config, matcher.indexes
    times: dict[str, float] = defaultdict(float)
    n_queries = 0

    def timed(stage, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        times[stage] += time.perf_counter() - t0
        return out

    for start in range(0, len(requests), batch_size):
        prepared = timed("prepare", matcher.prepare, requests[start : start + batch_size])
        queries = prepared.queries
        n_queries += len(queries)
        retrieved = {}
        for name in cfg.retrievers:  # Matcher.retrieve, one stage at a time (retrieval/base.py)
            retriever = idx.retrievers[name]
            encoded = timed(f"{name} encode", retriever.encode_queries, queries)
            retrieved[name] = timed(f"{name} search", retriever.search_encoded, encoded, cfg.hits_per_need)
        results = timed("rank + evidence", matcher.rank, prepared, retrieved)
        timed("json", lambda rs: [json.dumps(r.to_dict(), ensure_ascii=False) for r in rs], results)
    return dict(times), n_queries


def e5_variants(matcher, requests) -> None:
    """e5 throughput (tokens/s) in float32, bf16 autocast and int8 dynamic quantisation, on one batch."""
    import copy
    from contextlib import nullcontext

    import numpy as np
    import torch

    encoder = matcher.indexes.retrievers["e5"].encoder
    model, prompt = encoder.model, encoder._prompt["query"]
    queries = matcher.prepare(requests).queries
    tokens = sum(len(t) for t in model.tokenizer([prompt + q for q in queries])["input_ids"])
    print(f"e5 on {len(queries)} queries, {tokens / len(queries):.1f} tokens each (prompt included)")
    reference = None
    variants = [
        ("float32", model, nullcontext),
        ("bf16 autocast", model, lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
        (
            "int8 dynamic",
            torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
            ),
            nullcontext,
        ),
    ]
    for label, mdl, ctx in variants:
        with torch.inference_mode(), ctx():
            mdl.encode(queries[:16], prompt=prompt)
            t0 = time.perf_counter()
            vectors = mdl.encode(queries, prompt=prompt, batch_size=32, normalize_embeddings=True)
            seconds = time.perf_counter() - t0
        reference = vectors if reference is None else reference
        cosine = float(np.min(np.sum(reference * vectors, axis=1)))
        print(f"  {label:14} {tokens / seconds:7.0f} tokens/s  min cosine to float32 {cosine:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="hybrid")
    parser.add_argument("--single-n", type=int, default=100, help="Requests matched one at a time.")
    parser.add_argument("--batch-n", type=int, default=512, help="Requests matched in batches.")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    parser.add_argument("--variants", action="store_true", help="Also time e5 precision variants.")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()

    import torch

    from matcher.config import load_config
    from matcher.engine import Matcher
    from matcher.schema import Request

    torch.set_num_threads(args.threads)
    overrides: dict = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    if args.smoke:
        args.single_n, args.batch_n, args.batch_size = 5, 20, 8
        overrides = {
            "catalog_dir": "tests/fixtures/catalog",
            "retrievers": ["hashing", "bm25"],
            "retriever_weights": [1.0, 1.0],
            "index_dir": str(workdir / "index"),
            "model_dir": str(workdir),
        }
    matcher = Matcher.from_config(load_config(args.config, **overrides))
    path = workdir / "requests.jsonl"
    synth_requests(path, max(args.single_n, args.batch_n))
    requests = [
        Request.model_validate(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()
    ]
    matcher.match("워밍업: 금형 코팅 시험 문의")

    runs = {}
    for label, n, size in (("one at a time", args.single_n, 1), ("batch", args.batch_n, args.batch_size)):
        t0 = time.perf_counter()
        times, n_queries = stage_times(matcher, requests[:n], size)
        runs[label] = (n, n_queries, time.perf_counter() - t0, times)
    stages = list(dict.fromkeys(s for _, _, _, t in runs.values() for s in t))
    print(f"config {args.config}, torch threads {args.threads}; ms per request")
    print(f"{'stage':18}" + "".join(f"{label:>16}" for label in runs))
    for stage in stages:
        print(
            f"{stage:18}" + "".join(f"{1000 * t.get(stage, 0.0) / n:16.2f}" for n, _, _, t in runs.values())
        )
    print(f"{'total':18}" + "".join(f"{1000 * s / n:16.2f}" for n, _, s, _ in runs.values()))
    for label, (n, q, seconds, _) in runs.items():
        print(f"{label}: {n} requests, {q / n:.2f} queries each, {n / seconds:.1f} requests/s")
    if args.variants and "e5" in matcher.indexes.retrievers:
        e5_variants(matcher, requests[: args.batch_size])
    if args.smoke:
        assert all(q > 0 for _, q, _, _ in runs.values())
        print("smoke ok")


if __name__ == "__main__":
    main()

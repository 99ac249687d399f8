"""Scale benchmark: exact vs HNSW vs IVF FAISS indexes on synthetic national-registry-sized catalogs.

Why: the index type and its search parameters (`choose_index_type`/`EXACT_UP_TO` in
matcher/retrieval/dense.py, `hnsw_ef_search`/`ivf_nprobe` in MatcherConfig) are chosen by
measurement on this machine, with the queries the matcher really sends (the dev requests and their
needs, encoded), not with random vectors. Results and the rule: BENCHMARKS.md "## Scale" and
docs/index-choice.md.

Commands (from the repository root; nothing is downloaded; --out FILE also writes JSON):
    python bench/scale.py --smoke          # CI: 2,000 records, hashing encoder, correctness checks only
    python bench/scale.py --size 40000     # all 40k records USE-encoded (cold), end-to-end, incremental
    python bench/scale.py --size 40000 --cache /tmp/scale-cache --check-derived   # validate derivation
    python bench/scale.py --size 1000000 --cache /tmp/scale-cache --latency-queries 200

Record vectors. Up to --real-up-to records every synthetic record is encoded with the USE encoder
through `build_indexes` (cold cache: this is also the timed full rebuild). Beyond that, encoding
is too slow on 2 CPU cores (~220 texts/s on an idle machine), so the first --base records are
encoded and every other record i gets v_i = normalise(w x_a + (1 - w) x_b + sigma g / sqrt(d)):
a is an encoded record following the same template record as i (matcher.synth recombines a
template's title and lead sentence with phrases of its institute and kind), b an encoded record of
the same institute and kind, w ~ U(--mix-low, 1), g standard normal, sigma = --noise. The defaults
were calibrated on 40k real vectors (mean cosine to the 1st/50th neighbour 0.89/0.66 derived vs
0.87/0.69 real), and `--check-derived` shows HNSW and IVF recall@50 on derived vectors within
0.005 of the real ones wherever recall is >= 0.89 (0.016-0.028 lower at nprobe 8-16). --cache
keeps encoded vectors between runs (a persistent embedding cache that is only ever added to); with
it the "full build" is not cold.

Queries: the 230 dev requests, whole and split into needs as the matcher does (817 queries), and
300 held-out synthetic records (in-distribution queries, for contrast). Recall is tie-tolerant:
a returned record counts if its exact score reaches the exact k-th best score (minus 1e-5).
Latency is single-threaded (faiss.omp_set_num_threads(1), threadpoolctl limits for BLAS/OpenMP,
torch 1 thread) and per query (one query per search call, k = --k, the matcher's hits_per_need);
builds use every core. Other processes on the machine inflate p95s (and p50s when the load is
high): the run prints the load average at its start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from matcher.catalog import Catalog
from matcher.config import MatcherConfig
from matcher.encoders.base import Encoder, l2_normalize
from matcher.encoders.cache import EmbeddingCache, content_key
from matcher.engine import Matcher
from matcher.hits import prepare
from matcher.index_store import IndexSet, build_indexes
from matcher.retrieval.dense import EXACT_UP_TO, CapabilityIndex, DenseRetriever, encode_records
from matcher.schema import Request
from matcher.synth import (
    edit_records,
    source_catalog,
    synth_capabilities,
    synth_catalog,
    synth_requests,
    synth_templates,
)

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "data" / "requests" / "dev.jsonl"
CORES = os.cpu_count() or 1
TIE = 1e-5
"""Score tolerance: a returned record scoring within this of the exact k-th score counts as a hit."""


# ---------------------------------------------------------------------------------------- helpers
def log(msg: str) -> None:
    print(msg, flush=True)


def pct(times: Sequence[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ms = np.asarray(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def index_bytes(index: faiss.Index) -> int:
    """Serialised size: what the index holds in memory, give or take a few bytes of header."""
    with tempfile.NamedTemporaryFile(suffix=".faiss") as f:
        faiss.write_index(index, f.name)
        return os.path.getsize(f.name)


def exact_topk(X: np.ndarray, Q: np.ndarray, k: int, block: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force ground truth with numpy: top-k ids (best first) and the exact k-th score per query."""
    ids = np.empty((len(Q), k), np.int64)
    kth = np.empty(len(Q), np.float32)
    for a in range(0, len(Q), block):
        S = Q[a : a + block] @ X.T
        part = np.argpartition(-S, k - 1, axis=1)[:, :k]
        ps = np.take_along_axis(S, part, 1)
        order = np.argsort(-ps, axis=1, kind="stable")
        ids[a : a + block] = np.take_along_axis(part, order, 1)
        kth[a : a + block] = np.take_along_axis(ps, order, 1)[:, -1]
    return ids, kth


def recall(X: np.ndarray, Q: np.ndarray, found: np.ndarray, kth: np.ndarray, k: int) -> float:
    """Tie-tolerant recall@k: share of the first k returned ids whose exact score reaches the k-th best."""
    hits = 0
    for q, row, t in zip(Q, found[:, :k], kth, strict=True):
        row = np.unique(row[row >= 0])
        hits += int(((X[row] @ q) >= t - TIE).sum())
    return hits / (k * len(Q))


def time_queries(search: Callable[[np.ndarray], object], Q: np.ndarray, warm: int = 5) -> list[float]:
    """Seconds per single-query call, with every BLAS and OpenMP pool held to one thread."""
    out = []
    faiss.omp_set_num_threads(1)
    with threadpool_limits(1):
        for q in Q[:warm]:
            search(q[None])
        for q in Q:
            t = time.perf_counter()
            search(q[None])
            out.append(time.perf_counter() - t)
    return out


def load_dev_requests(limit: int | None = None) -> list[Request]:
    out = []
    with DEV.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(Request.model_validate_json(line))
    return out[:limit]


def query_texts(requests: Sequence[Request], cfg: MatcherConfig, spans: list[int] | None = None) -> list[str]:
    """What the matcher searches: each whole request and, when it splits into two or more, its needs.

    `spans`, if given, receives the number of queries of each request.
    """
    prepared = prepare(requests, cfg)
    if spans is not None:
        spans += [b - a for a, b in prepared.spans]
    return prepared.queries


def use_config(tmp: Path, **changes) -> MatcherConfig:
    return MatcherConfig(
        name="use",
        retrievers=("use",),
        retriever_weights=(1.0,),
        model_dir=str(tmp / "models"),
        index_dir=str(tmp / "index"),
        **changes,
    )


# ---------------------------------------------------------------------------------------- vectors
def _pick(keys_base: np.ndarray, keys: np.ndarray, u: np.ndarray) -> np.ndarray:
    """For each key, a random position among base rows with that key (-1 where there is none)."""
    order = np.argsort(keys_base, kind="stable")
    sorted_keys = keys_base[order]
    lo = np.searchsorted(sorted_keys, keys, "left")
    hi = np.searchsorted(sorted_keys, keys, "right")
    count = hi - lo
    pos = lo + (u * np.maximum(count, 1)).astype(np.int64)
    return np.where(count > 0, order[np.minimum(pos, len(order) - 1)], -1)


def derive_vectors(
    base: np.ndarray,
    templates: np.ndarray,
    groups: np.ndarray,
    n: int,
    *,
    noise: float,
    mix_low: float,
    seed: int,
    block: int = 100_000,
) -> np.ndarray:
    """Vectors for n records: the first len(base) are the encoded ones, the rest mixed (module docstring)."""
    b, dim = base.shape
    out = np.empty((n, dim), np.float32)
    out[: min(b, n)] = base[:n]
    rng = np.random.default_rng(seed)
    for a in range(b, n, block):
        z = min(n, a + block)
        t, g = templates[a:z], groups[a:z]
        pa = _pick(templates[:b], t, rng.random(z - a))
        pg = _pick(groups[:b], g, rng.random(z - a))
        pb = _pick(groups[:b], g, rng.random(z - a))
        pa = np.where(pa >= 0, pa, pg)
        pa = np.where(pa >= 0, pa, rng.integers(0, b, z - a))
        pb = np.where(pb >= 0, pb, pa)
        w = rng.uniform(mix_low, 1.0, (z - a, 1)).astype(np.float32)
        mixed = w * base[pa] + (1 - w) * base[pb]
        mixed += (noise / np.sqrt(dim)) * rng.standard_normal((z - a, dim), dtype=np.float32)
        out[a:z] = l2_normalize(mixed)
    return out


def neighbour_stats(X: np.ndarray, sample: int = 500, seed: int = 0) -> dict[str, float]:
    """Mean cosine of a record's 1st and 50th nearest other record (how crowded the space is)."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(X), size=min(sample, len(X)), replace=False)
    S = X[rows] @ X.T
    S[np.arange(len(rows)), rows] = -np.inf
    m = min(50, len(X) - 1)
    top = -np.sort(np.partition(-S, m - 1, axis=1)[:, :m], axis=1)
    return {"nn1": float(top[:, 0].mean()), f"nn{m}": float(top[:, m - 1].mean())}


# ---------------------------------------------------------------------------------------- indexes
def build_ivf_sq8(X: np.ndarray, seed: int) -> faiss.Index:
    """IVF with 8-bit scalar-quantised vectors (bench only: a quarter of the memory of IVF-Flat)."""
    n, dim = X.shape
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39 or 1))
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    rng = np.random.default_rng(seed)
    index.train(X[rng.choice(n, size=min(n, nlist * 64), replace=False)])
    index.add(X)
    return index


def bench_indexes(
    X: np.ndarray,
    query_sets: dict[str, np.ndarray],
    *,
    k: int,
    latency_queries: int,
    target: float,
    seed: int,
    kinds: Sequence[str] = ("flat", "hnsw", "ivf", "ivf-sq8"),
    keep: Sequence[str] = (),
) -> tuple[dict, dict[str, CapabilityIndex]]:
    """Build each index type, then sweep its search knob: latency (1 thread), recall@50 and @k.

    One index lives at a time (1M records: 2-2.3 GB each), except the kinds in `keep`, returned.
    """
    n = len(X)
    truth = {name: exact_topk(X, Q, k) for name, Q in query_sets.items()}
    truth50 = {
        name: np.einsum("qd,qd->q", X[ids[:, min(50, k) - 1]], Q)
        for (name, (ids, _)), Q in zip(truth.items(), query_sets.values(), strict=True)
    }
    dev = next(iter(query_sets))
    Qlat = query_sets[dev][:latency_queries]
    rows, chosen, built = [], {}, {}
    for kind in kinds:
        faiss.omp_set_num_threads(CORES)
        t0 = time.perf_counter()
        if kind == "ivf-sq8":
            raw = build_ivf_sq8(X, seed)
            index = None
        else:
            index = CapabilityIndex.build(X, kind, hnsw_m=32, seed=seed)
            raw = index.index
        build_s = time.perf_counter() - t0
        size = index_bytes(raw)
        if kind == "flat":
            sweep = [("-", {})]
        elif kind == "hnsw":
            efs = sorted({max(e, k) for e in (16, 32, 64, 128, 256, 384, 512, 768, 1024)})
            sweep = [(f"efSearch={e}", {"ef_search": e}) for e in efs]
        else:
            sweep = [(f"nprobe={p}", {"nprobe": p}) for p in (8, 16, 32, 64, 128, 256)]
        for label, params in sweep:
            if index is not None:

                def search(Q: np.ndarray, index=index, params=params) -> tuple[np.ndarray, np.ndarray]:
                    return index.search(Q, k, **params)
            else:
                faiss.ParameterSpace().set_index_parameter(raw, "nprobe", params["nprobe"])

                def search(Q: np.ndarray, raw=raw) -> tuple[np.ndarray, np.ndarray]:
                    return raw.search(np.ascontiguousarray(Q, dtype=np.float32), k)

            faiss.omp_set_num_threads(CORES)
            rec = {}
            for name, Q in query_sets.items():
                _, ids = search(Q)
                if ((ids < -1) | (ids >= n)).any():
                    raise AssertionError(f"{kind} {label}: ids out of range")
                rec[f"recall50_{name}"] = recall(X, Q, ids, truth50[name], min(50, k))
                rec[f"recall{k}_{name}"] = recall(X, Q, ids, truth[name][1], k)
            p50, p95 = pct(time_queries(search, Qlat))
            row = {
                "index": kind,
                "params": label,
                "build_s": build_s,
                "bytes": size,
                "bytes_per_record": size / n,
                "p50_ms": p50,
                "p95_ms": p95,
                **rec,
            }
            rows.append(row)
            log(
                f"  {kind:8s} {label:13s} build {build_s:7.1f}s  {size / n:7.0f} B/rec  "
                f"p50 {p50:7.3f} ms  p95 {p95:7.3f} ms  "
                + "  ".join(f"{key.replace('recall', 'R@')} {v:.4f}" for key, v in rec.items())
            )
            if kind not in chosen and rec[f"recall50_{dev}"] >= target:
                chosen[kind] = row
        if index is not None and kind in keep:
            built[kind] = index
        del index, raw
    return {"rows": rows, "chosen": chosen}, built


def bench_search_only(X: np.ndarray, Q: np.ndarray, k: int, rows: list[dict]) -> list[dict]:
    """One query, k hits, one thread: numpy (the baseline) and sentence-transformers, timed here, and
    the FAISS indexes at MatcherConfig's default settings (timed the same way in `bench_indexes`).

    sentence-transformers gets `dot_score` (the vectors are unit already): its default `cos_sim`
    re-normalises the whole corpus on every call, ~35x slower at 40k records.
    """
    import torch
    from sentence_transformers import util

    torch.set_num_threads(1)
    Xt = torch.from_numpy(X)

    def numpy_search(q: np.ndarray) -> np.ndarray:
        s = X @ q[0]
        part = np.argpartition(-s, k - 1)[:k]
        return part[np.argsort(-s[part])]

    def st_search(q: np.ndarray) -> list:
        return util.semantic_search(torch.from_numpy(q), Xt, top_k=k, score_function=util.dot_score)

    out = []
    for name, fn in (("numpy q@X.T + argpartition", numpy_search), ("st semantic_search (dot)", st_search)):
        p50, p95 = pct(time_queries(fn, Q))
        out.append({"method": name, "p50_ms": p50, "p95_ms": p95})
    cfg = MatcherConfig()
    shipped = {"-", f"efSearch={max(cfg.hnsw_ef_search, k)}", f"nprobe={cfg.ivf_nprobe}"}
    for row in rows:
        if row["params"] in shipped:
            method = f"faiss {row['index']} {row['params']}"
            out.append({"method": method, "p50_ms": row["p50_ms"], "p95_ms": row["p95_ms"]})
    base = out[0]["p50_ms"]
    for row in out:
        row["ratio"] = row["p50_ms"] / base
        log(
            f"  {row['method']:32s} p50 {row['p50_ms']:8.3f} ms  p95 {row['p95_ms']:8.3f} ms  "
            f"x{row['ratio']:6.2f}"
        )
    return out


def bench_per_request(
    X: np.ndarray, Q: np.ndarray, spans: Sequence[int], k: int, built: dict[str, CapabilityIndex]
) -> list[dict]:
    """Search time of one whole match: a request's queries (whole + needs) in one call, one thread,
    at the config's defaults. This is what `Matcher.retrieve` spends in FAISS per request."""
    cfg = MatcherConfig()
    indexes = {"flat": CapabilityIndex.build(X, "flat"), **built}
    blocks = np.split(Q, np.cumsum(spans)[:-1])
    out = []
    for kind, index in indexes.items():
        times = []
        faiss.omp_set_num_threads(1)
        with threadpool_limits(1):
            for block in blocks[:5] + blocks:
                t = time.perf_counter()
                index.search(block, k, ef_search=cfg.hnsw_ef_search, nprobe=cfg.ivf_nprobe)
                times.append(time.perf_counter() - t)
        p50, p95 = pct(times[5:])
        out.append({"index": kind, "p50_ms": p50, "p95_ms": p95})
        log(f"  {kind:5s} per request ({np.mean(spans):.2f} queries): p50 {p50:7.3f} ms  p95 {p95:7.3f} ms")
    return out


# ---------------------------------------------------------------------------------------- end to end
def bench_end_to_end(
    indexes: IndexSet,
    encoder: Encoder,
    X: np.ndarray,
    requests: Sequence[Request],
    cfg: MatcherConfig,
    variants: dict[str, tuple[IndexSet, MatcherConfig]],
) -> list[dict]:
    """`Matcher.match` per request vs the same query encoding + numpy or st search + max per institute.

    Each approximate variant's recommendations are compared with its exact (flat) twin: the share of
    requests with the same first recommendation, and the mean overlap of the top-5 recommendations.
    """
    import torch
    from sentence_transformers import util

    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    Xt = torch.from_numpy(X)
    owner = indexes.owner
    n_inst = len(indexes.catalog.institutes)
    k = cfg.hits_per_need

    def simple(search: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> Callable[[Request], object]:
        def run(request: Request) -> np.ndarray:
            Q = encoder.encode(query_texts([request], cfg), kind="query")
            scores, ids = search(Q)
            inst = np.zeros(n_inst)
            np.maximum.at(inst, owner[ids[0]], scores[0])
            return np.argsort(-inst)

        return run

    def numpy_search(Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        S = Q @ X.T
        part = np.argpartition(-S, k - 1, axis=1)[:, :k]
        return np.take_along_axis(S, part, 1), part

    def st_search(Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hits = util.semantic_search(torch.from_numpy(Q), Xt, top_k=k, score_function=util.dot_score)
        ids = np.array([[h["corpus_id"] for h in row] for row in hits])
        return np.array([[h["score"] for h in row] for row in hits]), ids

    runs: list[tuple[str, Callable[[Request], object]]] = [
        ("USE encode + numpy + max/institute", simple(numpy_search)),
        ("USE encode + st semantic_search(dot) + max", simple(st_search)),
    ]
    for name, (idx, variant_cfg) in variants.items():
        matcher = Matcher(idx, variant_cfg)
        runs.append((f"Matcher.match {name}", matcher.match))
    # Round-robin over methods for each request, so load changes on a shared machine hit all alike.
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    results: dict[str, list] = {name: [] for name, _ in runs}
    with threadpool_limits(1):
        for r in requests[:5]:
            for _, fn in runs:
                fn(r)
        for r in requests:
            for name, fn in runs:
                t = time.perf_counter()
                results[name].append(fn(r))
                times[name].append(time.perf_counter() - t)
    out, base = [], None
    tops: dict[str, list[list[tuple[str, ...]]]] = {}
    for name, _ in runs:
        p50, p95 = pct(times[name])
        base = base or p50
        row = {"method": name, "p50_ms": p50, "p95_ms": p95, "ratio": p50 / base}
        if name.startswith("Matcher"):
            tops[name] = [[rec.institutes for rec in res.recommendations[:5]] for res in results[name]]
            twin = name.split(" (")[0] + " (flat)"
            if twin in tops and twin != name:
                pairs = list(zip(tops[twin], tops[name], strict=True))
                row["same_top1_as_flat"] = float(np.mean([a[:1] == b[:1] for a, b in pairs]))
                row["top5_overlap_with_flat"] = float(
                    np.mean([len(set(a) & set(b)) / max(1, len(a)) for a, b in pairs])
                )
        out.append(row)
        agree = ""
        if "same_top1_as_flat" in row:
            top1, top5 = row["same_top1_as_flat"], row["top5_overlap_with_flat"]
            agree = f"  top-1 as flat {top1:.3f}, top-5 overlap {top5:.3f}"
        log(f"  {name:48s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  x{p50 / base:5.2f}{agree}")
    return out


# ---------------------------------------------------------------------------------------- runs
def remember(root: Path, encoder: Encoder, records: Sequence, vectors: np.ndarray) -> None:
    """Add these records' vectors to the persistent --cache (never pruning what other runs stored)."""
    keys = [content_key(r.id, t) for r, t in zip(records, [r.text() for r in records], strict=True)]
    lookup = dict(zip(keys, vectors, strict=True))
    cache = EmbeddingCache(root, encoder.id, encoder.dim)
    cache.get_or_encode(keys, keys, lambda missing: np.stack([lookup[k] for k in missing]))
    cache.save()


def groups_of(source: Catalog, templates: np.ndarray) -> np.ndarray:
    inst = {i.id: n for n, i in enumerate(source.institutes)}
    kinds = {"staff": 0, "technology": 1, "equipment": 2}
    g = np.array([inst[c.institute] * 3 + kinds[c.kind.value] for c in source.capabilities], np.int64)
    return g[templates]


def run_full(args: argparse.Namespace) -> dict:
    n, seed, k = args.size, args.seed, args.k
    tmp = Path(tempfile.mkdtemp(prefix="matcher-scale-"))
    try:
        return _run_full(args, n, seed, k, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_full(args: argparse.Namespace, n: int, seed: int, k: int, tmp: Path) -> dict:
    source = source_catalog()
    log(
        f"# scale benchmark: {n:,} records, seed {seed}, k={k}, {CORES} cores, source {source.source} "
        f"({len(source.capabilities)} records, hash {source.content_hash})"
    )
    load = os.getloadavg()[0]
    log(f"load average at start: {load:.1f} (other processes compete for the {CORES} cores)")
    result: dict = {"size": n, "seed": seed, "k": k, "cores": CORES, "load_at_start": load}
    result["source"] = {
        "dir": source.source,
        "records": len(source.capabilities),
        "hash": source.content_hash,
    }
    real = n <= args.real_up_to
    t0 = time.perf_counter()
    catalog = synth_catalog(n if real else args.base, seed=seed, source=source)
    result["generate_s"] = time.perf_counter() - t0
    log(f"generated {len(catalog.capabilities):,} records in {result['generate_s']:.1f}s")

    cfg = use_config(tmp)
    cache = Path(cfg.model_dir) / "cache"
    if args.cache and args.cache.is_dir():
        shutil.copytree(args.cache, cache)
    t0 = time.perf_counter()
    indexes = build_indexes(catalog, cfg)
    full_s = time.perf_counter() - t0
    encoded = indexes.manifest["dense"]["use"]["encoded"]
    encoder, auto = indexes.retrievers["use"].encoder, indexes.retrievers["use"].index
    X_real, _ = encode_records(encoder, indexes.records, cache)
    log(
        f"full build (USE, index_type auto -> {auto.index_type}): {full_s:.1f}s for "
        f"{len(catalog.capabilities):,} records, {encoded:,} encoded (the rest from --cache)"
    )
    result["full_build"] = {"s": full_s, "records": len(catalog.capabilities), "encoded": encoded}
    if args.cache:
        remember(args.cache, encoder, indexes.records, X_real)

    requests = load_dev_requests()
    spans: list[int] = []
    Qdev = encoder.encode(query_texts(requests, cfg, spans), kind="query")
    held = list(synth_capabilities(args.held_out, seed=seed, source=source, start=max(n, args.base)))
    Qheld = encoder.encode([r.text() for r in held], kind="query")
    query_sets = {"dev": Qdev, "records": Qheld}
    result["queries"] = {"dev": len(Qdev), "dev_requests": len(requests), "records": len(Qheld)}
    log(
        f"queries: {len(Qdev)} from {len(requests)} dev requests (whole + needs), "
        f"{len(Qheld)} held-out records"
    )

    if real and args.incremental:
        edited, changed = edit_records(catalog, 0.01, seed=seed)
        t0 = time.perf_counter()
        again = build_indexes(edited, cfg)
        incr_s = time.perf_counter() - t0
        re_encoded = again.manifest["dense"]["use"]["encoded"]
        cold = encoded == len(catalog.capabilities)
        log(
            f"incremental: {len(changed)} records edited (1%): rebuild {incr_s:.1f}s ({re_encoded} encoded)"
            + (f" vs full {full_s:.1f}s: x{full_s / incr_s:.1f} faster" if cold else "")
        )
        result["incremental"] = {"changed": len(changed), "encoded": re_encoded, "rebuild_s": incr_s}
        if cold:
            result["incremental"] |= {"full_s": full_s, "speedup": full_s / incr_s}

    templates = synth_templates(n, seed=seed, source=source)
    derive = {"noise": args.noise, "mix_low": args.mix_low, "seed": seed}
    if real:
        X = X_real
    else:
        t0 = time.perf_counter()
        X = derive_vectors(X_real, templates, groups_of(source, templates), n, **derive)
        result["derive_s"] = time.perf_counter() - t0
        log(f"derived {n - args.base:,} vectors from {args.base:,} encoded ones in {result['derive_s']:.1f}s")
    del X_real
    result["vectors"] = "real" if real else f"derived from {args.base} encoded ({derive})"
    result["neighbours"] = neighbour_stats(X)
    log(f"neighbour cosine: {result['neighbours']}")

    log(f"## indexes (k={k}; latency over {min(args.latency_queries, len(Qdev))} dev queries, 1 thread)")
    result["indexes"], built = bench_indexes(
        X,
        query_sets,
        k=k,
        latency_queries=args.latency_queries,
        target=args.target,
        seed=seed,
        keep=("hnsw", "ivf") if real else (),
    )
    chosen = result["indexes"]["chosen"]
    log(
        f"smallest setting with dev recall@50 >= {args.target}: "
        + ", ".join(f"{kd}: {r['params']}" for kd, r in chosen.items())
    )

    if real and args.check_derived and n > args.base:
        log(f"## check of the derived-vector method: first {args.base} real vectors -> {n:,} derived")
        Xd = derive_vectors(X[: args.base], templates, groups_of(source, templates), n, **derive)
        result["derived_check"] = {"neighbours": neighbour_stats(Xd)}
        log(f"neighbour cosine (derived): {result['derived_check']['neighbours']}")
        result["derived_check"]["indexes"], _ = bench_indexes(
            Xd,
            query_sets,
            k=k,
            latency_queries=args.latency_queries,
            target=args.target,
            seed=seed,
            kinds=("hnsw", "ivf"),
        )
        del Xd

    log("## search only (one query, 1 thread, default settings), ratio against numpy brute force")
    result["search_only"] = bench_search_only(X, Qdev[: args.latency_queries], k, result["indexes"]["rows"])

    if real:
        log("## search per request (whole + needs in one call, 1 thread, default settings)")
        result["per_request"] = bench_per_request(X, Qdev, spans, k, built)
        log(f"## end to end, {len(requests)} dev requests one at a time")
        result["end_to_end"] = bench_end_to_end(
            indexes, encoder, X, requests, cfg, _variants(args, result, indexes, X, cfg, built)
        )
    return result


def _variants(
    args: argparse.Namespace,
    result: dict,
    indexes: IndexSet,
    X: np.ndarray,
    cfg: MatcherConfig,
    built: dict[str, CapabilityIndex],
) -> dict[str, tuple[IndexSet, MatcherConfig]]:
    """Matchers to time: USE over flat, IVF and HNSW at the config's default search settings (what
    `index_type = "auto"` ships), each alone and with BM25."""
    encoder = indexes.retrievers["use"].encoder
    dense = {"flat": (CapabilityIndex.build(X, "flat"), cfg)}
    if "ivf" in built:
        dense[f"ivf nprobe={cfg.ivf_nprobe}"] = (built["ivf"], cfg)
    if "hnsw" in built:
        dense[f"hnsw ef={cfg.hnsw_ef_search}"] = (built["hnsw"], cfg)
    bm25 = None
    if args.bm25:
        from matcher.retrieval.lexical import BM25Index, BM25Retriever

        t0 = time.perf_counter()
        bm25 = BM25Retriever(BM25Index.build([r.text() for r in indexes.records]))
        result["bm25_build_s"] = time.perf_counter() - t0
        log(f"  BM25 build: {result['bm25_build_s']:.1f}s")
    out = {}
    for label, (index, run_cfg) in dense.items():
        use = DenseRetriever(
            "use", encoder, index, ef_search=run_cfg.hnsw_ef_search, nprobe=run_cfg.ivf_nprobe
        )
        one = IndexSet(indexes.catalog, indexes.records, indexes.owner, {"use": use})
        out[f"use ({label})"] = (one, run_cfg)
        if bm25 is not None:
            both = IndexSet(indexes.catalog, indexes.records, indexes.owner, {"use": use, "bm25": bm25})
            out[f"use+bm25 ({label})"] = (
                both,
                run_cfg.replace(retrievers=("use", "bm25"), retriever_weights=(1.0, 1.0)),
            )
    return out


def run_smoke(args: argparse.Namespace) -> int:
    """Correctness only, in seconds: flat == numpy brute force, HNSW/IVF valid, incremental re-encode."""
    tmp = Path(tempfile.mkdtemp(prefix="matcher-scale-smoke-"))
    try:
        return _run_smoke(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_smoke(args: argparse.Namespace, tmp: Path) -> int:
    n, seed, k = 2000, args.seed, 50
    source = source_catalog()
    catalog = synth_catalog(n, seed=seed, source=source)
    cfg = MatcherConfig(
        name="smoke",
        retrievers=("hashing",),
        retriever_weights=(1.0,),
        model_dir=str(tmp / "models"),
        index_dir=str(tmp / "index"),
    )
    indexes = build_indexes(catalog, cfg)
    encoder = indexes.retrievers["hashing"].encoder
    X, _ = encode_records(encoder, indexes.records, Path(cfg.model_dir) / "cache")
    texts = [r.text for r in synth_requests(40, seed=seed, source=source)]
    texts += [r.text() for r in synth_capabilities(40, seed=seed, source=source, start=n)]
    Q = encoder.encode(texts, kind="query")
    failures = []
    _, kth = exact_topk(X, Q, k)
    for kind in ("flat", "hnsw", "ivf"):
        index = CapabilityIndex.build(X, kind, seed=seed)
        scores, ids = index.search(Q, k)
        valid = ((ids >= 0) & (ids < n)).all() and all(len(set(r)) == k for r in ids.tolist())
        r = recall(X, Q, ids, kth, k)
        log(f"{kind:5s} recall@{k} vs numpy brute force {r:.4f}  ids valid: {valid}")
        if not valid or not np.isfinite(scores).all():
            failures.append(f"{kind}: invalid ids or scores")
        if kind == "flat" and r != 1.0:
            failures.append(f"flat recall {r} != 1.0")
        if kind != "flat" and r < 0.5:
            failures.append(f"{kind} recall {r} < 0.5")
    edited, changed = edit_records(catalog, 0.01, seed=seed)
    encoded = build_indexes(edited, cfg).manifest["dense"]["hashing"]["encoded"]
    log(f"incremental: {len(changed)} edited, {encoded} re-encoded")
    if encoded != len(changed):
        failures.append(f"incremental re-encoded {encoded}, expected {len(changed)}")
    result = Matcher(indexes, cfg).match(texts[0])
    log(f"match: top {[rec.institutes for rec in result.recommendations[:3]]}")
    if not result.recommendations:
        failures.append("match returned no recommendation")
    for f in failures:
        log(f"FAIL {f}")
    log("smoke OK" if not failures else "smoke FAILED")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny correctness run for CI")
    p.add_argument("--size", type=int, default=40_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=MatcherConfig().hits_per_need, help="hits per query")
    p.add_argument("--real-up-to", type=int, default=40_000, help="encode every record up to this size")
    p.add_argument("--base", type=int, default=8_000, help="encoded records when deriving vectors")
    p.add_argument("--noise", type=float, default=0.35, help="sigma of the derived vectors' noise")
    p.add_argument("--mix-low", type=float, default=0.4, help="derived vectors: w ~ U(mix_low, 1)")
    p.add_argument("--cache", type=Path, help="embedding cache reused across runs (skips encoding)")
    p.add_argument("--held-out", type=int, default=300, help="held-out synthetic records as queries")
    p.add_argument("--latency-queries", type=int, default=300)
    p.add_argument("--target", type=float, default=0.95, help="recall@50 the chosen settings must reach")
    p.add_argument("--no-incremental", dest="incremental", action="store_false")
    p.add_argument("--no-bm25", dest="bm25", action="store_false")
    p.add_argument("--check-derived", action="store_true", help="compare derived with real vectors")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.smoke:
        return run_smoke(args)
    t0 = time.perf_counter()
    result = run_full(args)
    result["total_s"] = time.perf_counter() - t0
    result["exact_up_to"] = EXACT_UP_TO
    log(f"total {result['total_s']:.0f}s")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

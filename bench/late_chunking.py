"""Late chunking, measured: need vectors pooled from one pass over the whole request vs one pass per need.

Today a request and each of its needs are encoded separately (about 5 encoder passes a request). With
late chunking the request is encoded once and each need's vector is the mean of the token states of its
characters (`OnnxEncoder.encode_spans`). This script compares dev MRR (with 95% CIs) and e5 encoding time
on the same index, same CPU, same run:

    python bench/late_chunking.py --set e5_runtime=onnx-int8 [--requests data/requests/dev.jsonl]

Experiment only: the matcher ships late chunking only if MRR holds (docs/speed.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matcher.config import load_config, parse_overrides  # noqa: E402
from matcher.encoders.ort import OnnxEncoder  # noqa: E402
from matcher.encoders.runtime import cpu_description  # noqa: E402
from matcher.korean import normalize_text  # noqa: E402


def locate(need: str, whole: str, cursor: int) -> tuple[int, int] | None:
    """The character span of a need (clauses re-joined by spaces) in the normalised whole text."""
    head, tail = need[:12], need[-12:]
    start = whole.find(head, cursor)
    end = whole.find(tail, max(start, 0) + max(0, len(need) - len(tail) - 20)) if start >= 0 else -1
    return (start, end + len(tail)) if start >= 0 and end >= 0 else None


class LateChunking:
    """Wraps an `OnnxEncoder`: in a batch laid out as the engine lays it out (each request's whole text
    followed by its needs), needs found inside the preceding whole text are pooled from its one pass."""

    def __init__(self, inner: OnnxEncoder):
        self.inner, self.id, self.dim = inner, inner.id, inner.dim
        self.seconds = 0.0

    def encode(self, texts, *, kind="query", batch_size=32):
        start = time.perf_counter()
        if kind != "query":
            return self.inner.encode(texts, kind=kind, batch_size=batch_size)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        i = 0
        while i < len(texts):
            whole = normalize_text(texts[i])
            spans, j, cursor = [], i + 1, 0
            while j < len(texts) and (span := locate(normalize_text(texts[j]), whole, cursor)) is not None:
                spans.append(span)
                cursor = span[0] + 1
                j += 1
            vec, parts = self.inner.encode_spans(whole, spans, kind="query")
            out[i] = vec[0]
            out[i + 1 : j] = parts
            i = j
        self.seconds += time.perf_counter() - start
        return out


class Timed:
    def __init__(self, inner):
        self.inner, self.id, self.dim, self.seconds = inner, inner.id, inner.dim, 0.0

    def encode(self, texts, *, kind="query", batch_size=32):
        start = time.perf_counter()
        try:
            return self.inner.encode(texts, kind=kind, batch_size=batch_size)
        finally:
            self.seconds += time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="hybrid")
    parser.add_argument("--requests", default="data/requests/dev.jsonl")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    from matcher.datasets import load_labeled
    from matcher.engine import Matcher
    from matcher.evaluation.runner import run, summarize

    cfg = load_config(args.config, **parse_overrides(args.set))
    cpu = cpu_description()
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores, flags {' '.join(cpu['flags']) or '-'}")
    base = Matcher.from_config(cfg)
    e5 = base.indexes.retrievers["e5"]
    encoder = e5.encoder  # type: ignore[attr-defined]
    if not isinstance(encoder, OnnxEncoder):
        sys.exit(
            f"late chunking needs an ONNX runtime for e5 (got {encoder.id}); use --set e5_runtime=onnx-int8"
        )
    golds = load_labeled(args.requests, base.catalog, strict=False)
    print(f"e5 encoder: {encoder.id}; {len(golds)} requests from {args.requests}")
    for name, wrapped in (("separate passes", Timed(encoder)), ("late chunking", LateChunking(encoder))):
        retrievers = {**base.indexes.retrievers, "e5": e5.with_encoder(wrapped)}  # type: ignore[attr-defined]
        matcher = Matcher(replace(base.indexes, retrievers=retrievers), cfg, base.reranker)
        rows, _ = run(matcher, golds, one_at_a_time=True)
        summary = summarize(rows, seed=cfg.seed)
        m, ci = summary["metrics"], summary["ci95"]
        print(
            f"{name:16} MRR {m['mrr']:.4f} [{ci['mrr'][0]:.3f}, {ci['mrr'][1]:.3f}]  hit@1 {m['hit@1']:.3f}  "
            f"hit@5 {m['hit@5']:.3f}  e5 encoding {wrapped.seconds * 1000 / len(golds):.1f} ms/request"
        )


if __name__ == "__main__":
    main()

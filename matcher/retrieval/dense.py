"""`CapabilityIndex`: a FAISS inner-product index over L2-normalised capability embeddings.

Exact (`IndexFlatIP`) by default; HNSW or IVF for very large catalogs (the size rule is in
`choose_index_type`, measured in BENCHMARKS.md). `search` mirrors FAISS: `(scores, ids)` arrays of
shape (n_queries, k), id -1 for "no result".
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

EXACT_UP_TO = 20_000
"""Exact search stays well under 5 ms per query (one thread, even on a busy machine) up to this many
records; above it IVF is used (bench/scale.py, docs/index-choice.md)."""


def choose_index_type(n: int, requested: str = "auto") -> str:
    """Flat up to EXACT_UP_TO records, else IVF: on request-like queries IVF kept recall@50 >= 0.98
    from 40k to 1M records where HNSW fell to 0.82 at 1M (docs/index-choice.md)."""
    if requested != "auto":
        return requested
    return "flat" if n <= EXACT_UP_TO else "ivf"


class CapabilityIndex:
    """Inner-product search over unit vectors; scores are cosine similarities."""

    def __init__(self, index: faiss.Index, index_type: str):
        self.index = index
        self.index_type = index_type

    @property
    def dim(self) -> int:
        return self.index.d

    def __len__(self) -> int:
        return self.index.ntotal

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        index_type: str = "auto",
        *,
        hnsw_m: int = 32,
        ivf_nlist: int | None = None,
        seed: int = 13,
    ) -> CapabilityIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        kind = choose_index_type(n, index_type)
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
        elif kind == "ivf":
            nlist = ivf_nlist or max(1, min(int(4 * np.sqrt(n)), n // 39 or 1))
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = vectors[rng.choice(n, size=min(n, nlist * 64), replace=False)]
            index.train(sample)
        else:
            raise ValueError(f"unknown index type {kind!r} (flat, hnsw, ivf, auto)")
        if n:
            index.add(vectors)
        return cls(index, kind)

    def search(
        self, queries: np.ndarray, k: int, *, ef_search: int = 512, nprobe: int = 128
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, len(self))) if len(self) else 1
        if self.index_type == "hnsw":
            faiss.ParameterSpace().set_index_parameter(self.index, "efSearch", max(ef_search, k))
        elif self.index_type == "ivf":
            faiss.ParameterSpace().set_index_parameter(self.index, "nprobe", nprobe)
        if not len(self):
            return (
                np.full((len(queries), k), -np.inf, dtype=np.float32),
                np.full((len(queries), k), -1, np.int64),
            )
        scores, ids = self.index.search(queries, k)
        return scores, ids

    def reconstruct_all(self) -> np.ndarray:
        return self.index.reconstruct_n(0, len(self)) if len(self) else np.zeros((0, self.dim), np.float32)

    def save(self, path: str | Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | Path, index_type: str) -> CapabilityIndex:
        return cls(faiss.read_index(str(path)), index_type)

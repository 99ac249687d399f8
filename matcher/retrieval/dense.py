"""`CapabilityIndex`: a FAISS inner-product index over L2-normalised capability embeddings.

Exact (`IndexFlatIP`) by default; HNSW or IVF for very large catalogs (the size rule is in
`choose_index_type`, measured in BENCHMARKS.md). `search` mirrors FAISS: `(scores, ids)` arrays of
shape (n_queries, k), id -1 for "no result". `DenseRetriever` puts an encoder in front of it: the
`e5`, `use` and `hashing` retrievers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from matcher.encoders.base import Encoder
from matcher.encoders.cache import EmbeddingCache, content_key
from matcher.encoders.query_cache import CachingEncoder, QueryVectorStore
from matcher.encoders.registry import encoder_identity, load_encoder, measured_batch_size_for
from matcher.retrieval.base import Progress, QueryEncoder, Searches, SearchHits

if TYPE_CHECKING:
    from matcher.config import MatcherConfig
    from matcher.schema import Capability

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


def dense_encoder(name: str, config: MatcherConfig) -> Encoder:
    """The encoder behind a dense retriever name under this config (cached per process)."""
    return load_encoder(name, e5_model=config.e5_model, model_dir=config.model_dir, runtime=config.e5_runtime)


DEFAULT_BATCH_SIZE = 32


def dense_batch_size(name: str, config: MatcherConfig) -> int:
    """Texts per encoder call: the config's, else the size measured for e5 on this machine, else 32."""
    if config.encode_batch_size:
        return config.encode_batch_size
    measured = measured_batch_size_for(
        name, e5_model=config.e5_model, model_dir=config.model_dir, runtime=config.e5_runtime
    )
    return measured or DEFAULT_BATCH_SIZE


def dense_encoder_id(name: str, config: MatcherConfig) -> str:
    """`dense_encoder(name, config).id` without loading the model."""
    return encoder_identity(
        name, e5_model=config.e5_model, model_dir=config.model_dir, runtime=config.e5_runtime
    )


def encode_records(
    encoder: Encoder,
    records: Sequence[Capability],
    cache_root: Path,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> tuple[np.ndarray, int]:
    """Embeddings of the records through the cache: only new or edited records are encoded."""
    texts = [r.text() for r in records]
    keys = [content_key(r.id, t) for r, t in zip(records, texts, strict=True)]
    cache = EmbeddingCache(cache_root, encoder.id, encoder.dim)

    def encode(missing: list[str]) -> np.ndarray:
        parts = []
        for start in range(0, len(missing), 256):
            parts.append(encoder.encode(missing[start : start + 256], kind="passage", batch_size=batch_size))
            if progress:
                progress(f"encoding ({encoder.id})", min(start + 256, len(missing)), len(missing))
        return np.vstack(parts)

    vectors, encoded = cache.get_or_encode(keys, texts, encode)
    cache.save(keep=keys)
    return vectors, encoded


class DenseRetriever(Searches):
    """An encoder and a FAISS index over the records' embeddings (`e5`, `use`, `hashing`).

    Search-time knobs (`encode_batch_size`, `hnsw_ef_search`, `ivf_nprobe`) are those of the config it
    was built or loaded with.
    """

    section = "dense"

    def __init__(
        self,
        name: str,
        encoder: Encoder | None,
        index: CapabilityIndex,
        *,
        loader: Callable[[], Encoder] | None = None,
        batch_size: int = 32,
        ef_search: int = 512,
        nprobe: int = 128,
        encoded: int = 0,
    ):
        if encoder is None and loader is None:
            raise ValueError("a dense retriever needs an encoder or a way to load one")
        self.name = name
        self._encoder = encoder
        self._loader = loader
        self.index = index
        self.batch_size = batch_size
        self.ef_search = ef_search
        self.nprobe = nprobe
        self.encoded = encoded
        """Records encoded when it was built (the rest came from the embedding cache)."""

    @property
    def encoder(self) -> Encoder:
        """Loaded on first use: a loaded index whose queries come encoded (`matcher.prefetch`) never
        loads its model, and a staleness check needs only its id (`dense_encoder_id`)."""
        if self._encoder is None:
            self._encoder = self._loader()  # type: ignore[misc]
        return self._encoder

    @encoder.setter
    def encoder(self, encoder: Encoder) -> None:
        self._encoder = encoder

    @staticmethod
    def _options(name: str, config: MatcherConfig) -> dict:
        return {
            "batch_size": dense_batch_size(name, config),
            "ef_search": config.hnsw_ef_search,
            "nprobe": config.ivf_nprobe,
        }

    @classmethod
    def build(
        cls, name: str, records: Sequence[Capability], config: MatcherConfig, progress: Progress | None = None
    ) -> DenseRetriever:
        encoder = dense_encoder(name, config)
        cache_root = Path(config.model_dir) / "cache"
        batch_size = dense_batch_size(name, config)
        vectors, encoded = encode_records(encoder, records, cache_root, batch_size, progress)
        index = CapabilityIndex.build(vectors, config.index_type, hnsw_m=config.hnsw_m, seed=config.seed)
        return cls(name, encoder, index, encoded=encoded, **cls._options(name, config))

    @classmethod
    def load(
        cls, name: str, directory: Path, entry: dict, records: Sequence[Capability], config: MatcherConfig
    ) -> DenseRetriever:
        index = CapabilityIndex.load(directory / entry["file"], entry["index_type"])
        return cls(
            name, None, index, loader=lambda: dense_encoder(name, config), **cls._options(name, config)
        )

    @classmethod
    def staleness(cls, name: str, entry: dict | None, config: MatcherConfig) -> list[str]:
        current = dense_encoder_id(name, config)  # first: a missing model is reported as such
        if entry is None:
            return [f"retriever {name!r} is not in the index"]
        if entry.get("encoder_id") != current:
            return [f"encoder changed for {name!r} ({entry.get('encoder_id')} → {current})"]
        return []

    def entry(self) -> dict:
        return {
            "encoder_id": self.encoder.id,
            "dim": self.encoder.dim,
            "index_type": self.index.index_type,
            "file": f"dense-{self.name}.faiss",
            "encoded": self.encoded,
            "cached": len(self.index) - self.encoded,
        }

    def save(self, directory: Path) -> None:
        self.index.save(directory / f"dense-{self.name}.faiss")

    def with_query_cache(self, store: QueryVectorStore) -> DenseRetriever:
        """The same index, its encoder answering query texts seen before from `store`."""
        out = copy.copy(self)
        out.encoder = CachingEncoder(self.encoder, store)
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(list(texts), kind="query", batch_size=self.batch_size)

    @classmethod
    def query_encoder(cls, name: str, config: MatcherConfig) -> QueryEncoder:
        encoder, batch_size = dense_encoder(name, config), dense_batch_size(name, config)
        return lambda texts: encoder.encode(list(texts), kind="query", batch_size=batch_size)

    def search_encoded(self, queries: np.ndarray, k: int) -> SearchHits:
        return self.index.search(queries, k, ef_search=self.ef_search, nprobe=self.nprobe)

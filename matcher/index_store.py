"""Building, saving and loading every index the matcher searches, with a manifest for staleness.

Layout of `index_dir`:
    manifest.json        catalog hash, record ids, per-retriever encoder id/dim/index type, version, time
    dense-<name>.faiss   one FAISS index per dense retriever (e5, use, or a fine-tuned model)
    bm25/                the bm25s index over Korean morphemes
No pickle anywhere: FAISS files, bm25s' own arrays and JSON.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from matcher import __version__
from matcher.catalog import Catalog
from matcher.config import MatcherConfig
from matcher.encoders.base import Encoder
from matcher.encoders.cache import EmbeddingCache, content_key
from matcher.encoders.registry import load_encoder
from matcher.schema import Capability

if TYPE_CHECKING:  # imported where used: a command loads only the retrievers its config names
    from matcher.retrieval.dense import CapabilityIndex
    from matcher.retrieval.lexical import BM25Index
    from matcher.retrieval.tfidf import TfidfIndex

DENSE = ("e5", "use", "hashing")
Progress = Callable[[str, int, int], None]


class StaleIndex(RuntimeError):
    """The saved index does not match the current catalog or encoder."""


@dataclass
class IndexSet:
    """The catalog's records in index order and every retriever over them."""

    catalog: Catalog
    records: list[Capability]
    owner: np.ndarray
    """Institute position (in `catalog.institutes`) of each record."""
    dense: dict[str, tuple[Encoder, CapabilityIndex]] = field(default_factory=dict)
    bm25: BM25Index | None = None
    tfidf: TfidfIndex | None = None
    manifest: dict = field(default_factory=dict)


def record_texts(records: Sequence[Capability]) -> list[str]:
    return [r.text() for r in records]


def _owner(catalog: Catalog, records: Sequence[Capability]) -> np.ndarray:
    pos = {inst.id: i for i, inst in enumerate(catalog.institutes)}
    return np.array([pos[r.institute] for r in records], dtype=np.int64)


def encode_records(
    encoder: Encoder,
    records: Sequence[Capability],
    cache_root: Path,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> tuple[np.ndarray, int]:
    """Embeddings of the records through the cache: only new or edited records are encoded."""
    texts = record_texts(records)
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


def _encoder_for(name: str, config: MatcherConfig) -> Encoder:
    return load_encoder(name, e5_model=config.e5_model, model_dir=config.model_dir, runtime=config.e5_runtime)


def build_indexes(
    catalog: Catalog,
    config: MatcherConfig,
    *,
    retrievers: Sequence[str] | None = None,
    progress: Progress | None = None,
    save: bool = True,
) -> IndexSet:
    """Build the indexes the config needs (or `retrievers`) and save them with a manifest."""
    retrievers = list(retrievers or config.retrievers)
    records = list(catalog.capabilities)
    out = IndexSet(catalog, records, _owner(catalog, records))
    texts = record_texts(records)
    manifest: dict = {
        "package_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "catalog_hash": catalog.content_hash,
        "count": len(records),
        "record_ids": [r.id for r in records],
        "dense": {},
        "lexical": {},
        "timings_s": {},
    }
    index_dir = Path(config.index_dir)
    cache_root = Path(config.model_dir) / "cache"
    for name in retrievers:
        t0 = time.perf_counter()
        if name in DENSE:
            from matcher.retrieval.dense import CapabilityIndex

            encoder = _encoder_for(name, config)
            vectors, encoded = encode_records(
                encoder, records, cache_root, config.encode_batch_size, progress
            )
            index = CapabilityIndex.build(vectors, config.index_type, hnsw_m=config.hnsw_m, seed=config.seed)
            out.dense[name] = (encoder, index)
            manifest["dense"][name] = {
                "encoder_id": encoder.id,
                "dim": encoder.dim,
                "index_type": index.index_type,
                "file": f"dense-{name}.faiss",
                "encoded": encoded,
                "cached": len(records) - encoded,
            }
        elif name == "bm25":
            from matcher.retrieval.lexical import BM25Index

            if progress:
                progress("BM25 (kiwi morphemes)", 0, 1)
            out.bm25 = BM25Index.build(texts)
            manifest["lexical"]["bm25"] = {"dir": "bm25", "tokenizer": "kiwipiepy content morphemes"}
        elif name == "tfidf":
            from matcher.retrieval.tfidf import TfidfIndex

            out.tfidf = TfidfIndex.build(texts)
        else:
            raise ValueError(f"unknown retriever {name!r}")
        manifest["timings_s"][name] = round(time.perf_counter() - t0, 3)
    out.manifest = manifest
    if save:
        save_indexes(out, index_dir)
    return out


def save_indexes(indexes: IndexSet, index_dir: Path) -> None:
    """Write atomically: into a temporary sibling, then swap, so a crash never leaves half an index."""
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = index_dir.with_name(index_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, (_, index) in indexes.dense.items():
        index.save(tmp / f"dense-{name}.faiss")
    if indexes.bm25 is not None:
        indexes.bm25.save(tmp / "bm25")
    (tmp / "manifest.json").write_text(json.dumps(indexes.manifest, ensure_ascii=False, indent=1))
    old = index_dir.with_name(index_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if index_dir.exists():
        index_dir.rename(old)
    tmp.rename(index_dir)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(index_dir: str | Path) -> dict | None:
    path = Path(index_dir) / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else None


def staleness(
    manifest: dict | None, catalog: Catalog, config: MatcherConfig, encoders: dict[str, Encoder]
) -> list[str]:
    """Reasons the saved index cannot serve this catalog and config (empty: it can)."""
    if manifest is None:
        return ["no index has been built yet"]
    reasons = []
    if manifest.get("catalog_hash") != catalog.content_hash:
        reasons.append(
            f"the catalog changed (index {manifest.get('catalog_hash')}, catalog {catalog.content_hash})"
        )
    for name in config.retrievers:
        if name in DENSE:
            entry = manifest.get("dense", {}).get(name)
            if entry is None:
                reasons.append(f"retriever {name!r} is not in the index")
            elif name in encoders and entry.get("encoder_id") != encoders[name].id:
                reasons.append(
                    f"encoder changed for {name!r} ({entry.get('encoder_id')} → {encoders[name].id})"
                )
        elif name == "bm25" and "bm25" not in manifest.get("lexical", {}):
            reasons.append("the BM25 index is missing")
    return reasons


def load_indexes(
    catalog: Catalog,
    config: MatcherConfig,
    *,
    rebuild: bool = False,
    progress: Progress | None = None,
    on_rebuild: Callable[[list[str]], None] | None = None,
) -> IndexSet:
    """Load the saved indexes; if they are stale or missing, raise `StaleIndex` or (rebuild=True) rebuild.

    A rebuild re-encodes only records whose text changed (embedding cache), so it is cheap after a
    small catalog edit.
    """
    index_dir = Path(config.index_dir)
    manifest = read_manifest(index_dir)
    encoders = {name: _encoder_for(name, config) for name in config.retrievers if name in DENSE}
    reasons = staleness(manifest, catalog, config, encoders)
    if reasons:
        if not rebuild:
            raise StaleIndex("; ".join(reasons))
        if on_rebuild:
            on_rebuild(reasons)
        wanted = list(
            dict.fromkeys(
                [*config.retrievers, *(manifest or {}).get("dense", {}), *(manifest or {}).get("lexical", {})]
            )
        )
        return build_indexes(
            catalog,
            config,
            retrievers=[r for r in wanted if r in (*DENSE, "bm25", "tfidf")],
            progress=progress,
        )
    assert manifest is not None
    by_id = {c.id: c for c in catalog.capabilities}
    records = [by_id[i] for i in manifest["record_ids"]]
    out = IndexSet(catalog, records, _owner(catalog, records), manifest=manifest)
    for name in config.retrievers:
        if name in DENSE:
            from matcher.retrieval.dense import CapabilityIndex

            entry = manifest["dense"][name]
            out.dense[name] = (
                encoders[name],
                CapabilityIndex.load(index_dir / entry["file"], entry["index_type"]),
            )
        elif name == "bm25":
            from matcher.retrieval.lexical import BM25Index

            out.bm25 = BM25Index.load(index_dir / "bm25", len(records))
        elif name == "tfidf":
            from matcher.retrieval.tfidf import TfidfIndex

            out.tfidf = TfidfIndex.build(record_texts(records))
    return out

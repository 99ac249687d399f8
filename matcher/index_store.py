"""Building, saving and loading every index the matcher searches, with a manifest for staleness.

Layout of `index_dir`:
    manifest.json        catalog hash, record ids, per-retriever entries (dense / lexical), version, time
    dense-<name>.faiss   one FAISS index per dense retriever (e5, use, or a fine-tuned model)
    bm25/                the bm25s index over Korean morphemes
    tfidf/               the tf-idf vocabulary, idf weights and record matrix
No pickle anywhere: FAISS files, bm25s' own arrays, .npy/.npz and JSON. Which class builds, loads and
stale-checks a retriever is the registry's business (`matcher.retrieval.registry`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from matcher import __version__
from matcher.catalog import Catalog
from matcher.config import MatcherConfig
from matcher.encoders.query_cache import CachingEncoder, QueryVectorStore
from matcher.hits import Retrieved
from matcher.retrieval.base import Progress, Retriever
from matcher.retrieval.registry import REGISTRY, retriever_class
from matcher.schema import Capability


class StaleIndex(RuntimeError):
    """The saved index does not match the current catalog or encoder."""


@dataclass
class IndexSet:
    """The catalog's records in index order and every retriever over them."""

    catalog: Catalog
    records: list[Capability]
    owner: np.ndarray
    """Institute position (in `catalog.institutes`) of each record."""
    retrievers: dict[str, Retriever] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)

    def search(
        self, queries: list[str], config: MatcherConfig, encoded: Mapping[str, Any] | None = None
    ) -> Retrieved:
        """Every configured retriever's `(scores, ids)` hits for every query (`config.hits_per_need` each).

        `encoded`: query representations already made by `Retriever.query_encoder` (in another
        process, `matcher.prefetch`), by retriever name; the others are encoded here."""
        out: Retrieved = {}
        for name in config.retrievers:
            if name not in self.retrievers:
                raise RuntimeError(f"retriever {name!r} has no index loaded")
            retriever = self.retrievers[name]
            if encoded is not None and encoded.get(name) is not None:
                out[name] = retriever.search_encoded(encoded[name], config.hits_per_need)
            else:
                out[name] = retriever.search(queries, config.hits_per_need)
        return out

    def with_query_cache(self, store: QueryVectorStore) -> IndexSet:
        """The same indexes, dense retrievers answering query texts seen before from `store`."""
        retrievers = {n: r.with_query_cache(store) for n, r in self.retrievers.items()}
        return IndexSet(self.catalog, self.records, self.owner, retrievers, self.manifest)

    def query_cache_counts(self) -> dict[str, int]:
        """Texts answered from the query cache and texts encoded, over every dense retriever."""
        encoders = (getattr(r, "encoder", None) for r in self.retrievers.values())
        cached = [e for e in encoders if isinstance(e, CachingEncoder)]
        return {"reused": sum(e.reused for e in cached), "encoded": sum(e.encoded for e in cached)}


def record_texts(records: Sequence[Capability]) -> list[str]:
    """The text each record is indexed by, in index order."""
    return [r.text() for r in records]


def _owner(catalog: Catalog, records: Sequence[Capability]) -> np.ndarray:
    pos = {inst.id: i for i, inst in enumerate(catalog.institutes)}
    return np.array([pos[r.institute] for r in records], dtype=np.int64)


def build_indexes(
    catalog: Catalog,
    config: MatcherConfig,
    *,
    retrievers: Sequence[str] | None = None,
    progress: Progress | None = None,
    save: bool = True,
) -> IndexSet:
    """Build the indexes the config needs (or `retrievers`) and save them with a manifest."""
    names = list(retrievers or config.retrievers)
    records = list(catalog.capabilities)
    out = IndexSet(catalog, records, _owner(catalog, records))
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
    for name in names:
        t0 = time.perf_counter()
        kind = retriever_class(name)
        retriever = kind.build(name, records, config, progress)
        out.retrievers[name] = retriever
        manifest[kind.section][name] = retriever.entry()
        manifest["timings_s"][name] = round(time.perf_counter() - t0, 3)
    out.manifest = manifest
    if save:
        save_indexes(out, Path(config.index_dir))
    return out


def save_indexes(indexes: IndexSet, index_dir: Path) -> None:
    """Write atomically: into a temporary sibling, then swap, so a crash never leaves half an index."""
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = index_dir.with_name(index_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for retriever in indexes.retrievers.values():
        retriever.save(tmp)
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


def _entry(manifest: dict, name: str) -> dict | None:
    return manifest.get(retriever_class(name).section, {}).get(name)


def staleness(manifest: dict | None, catalog: Catalog, config: MatcherConfig) -> list[str]:
    """Reasons the saved index cannot serve this catalog and config (empty: it can).

    Every retriever is asked even without an index, so a missing model (`ModelNotFound`) surfaces
    here rather than halfway through a rebuild."""
    per_retriever = [
        reason
        for name in config.retrievers
        for reason in retriever_class(name).staleness(name, _entry(manifest or {}, name), config)
    ]
    if manifest is None:
        return ["no index has been built yet"]
    reasons = []
    if manifest.get("catalog_hash") != catalog.content_hash:
        reasons.append(
            f"the catalog changed (index {manifest.get('catalog_hash')}, catalog {catalog.content_hash})"
        )
    return reasons + per_retriever


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
    small catalog edit; it keeps every retriever the old index had.
    """
    index_dir = Path(config.index_dir)
    manifest = read_manifest(index_dir)
    reasons = staleness(manifest, catalog, config)
    if reasons:
        if not rebuild:
            raise StaleIndex("; ".join(reasons))
        if on_rebuild:
            on_rebuild(reasons)
        had = [*(manifest or {}).get("dense", {}), *(manifest or {}).get("lexical", {})]
        wanted = [r for r in dict.fromkeys([*config.retrievers, *had]) if r in REGISTRY]
        return build_indexes(catalog, config, retrievers=wanted, progress=progress)
    assert manifest is not None
    by_id = {c.id: c for c in catalog.capabilities}
    records = [by_id[i] for i in manifest["record_ids"]]
    out = IndexSet(catalog, records, _owner(catalog, records), manifest=manifest)
    for name in config.retrievers:
        out.retrievers[name] = retriever_class(name).load(
            name, index_dir, _entry(manifest, name), records, config
        )
    return out

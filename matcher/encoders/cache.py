"""Embedding cache keyed by (encoder id, record id, content hash).

Re-indexing an edited catalog re-encodes only the records whose text changed. Stored as a
`vectors.npy` (float32, no pickle) plus `keys.json` per encoder, under `models/cache/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def content_key(record_id: str, text: str) -> str:
    return f"{record_id}:{hashlib.sha1(text.encode()).hexdigest()[:12]}"


class EmbeddingCache:
    """Vectors of one encoder, looked up by content key."""

    def __init__(self, root: str | Path, encoder_id: str, dim: int):
        safe = re.sub(r"[^A-Za-z0-9_.@-]+", "_", encoder_id)
        self.dir = Path(root) / safe
        self.dim = dim
        self._index: dict[str, int] = {}
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        keys, vecs = self.dir / "keys.json", self.dir / "vectors.npy"
        if keys.is_file() and vecs.is_file():
            try:
                loaded_keys = json.loads(keys.read_text())
                loaded = np.load(vecs, allow_pickle=False)
                if loaded.shape == (len(loaded_keys), dim):
                    self._index = {k: i for i, k in enumerate(loaded_keys)}
                    self._vectors = loaded
            except (ValueError, OSError):  # a damaged cache is rebuilt, never trusted
                pass

    def get_or_encode(
        self, keys: Sequence[str], texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]
    ) -> tuple[np.ndarray, int]:
        """Vectors for `keys` (encoding only the missing ones); returns (vectors, number encoded)."""
        missing = [i for i, k in enumerate(keys) if k not in self._index]
        if missing:
            fresh = encode([texts[i] for i in missing])
            start = len(self._vectors)
            self._vectors = np.vstack([self._vectors, fresh.astype(np.float32)])
            for offset, i in enumerate(missing):
                self._index[keys[i]] = start + offset
        rows = np.fromiter((self._index[k] for k in keys), dtype=np.int64, count=len(keys))
        return np.ascontiguousarray(self._vectors[rows]), len(missing)

    def save(self, keep: Sequence[str] | None = None) -> None:
        """Write atomically; with `keep`, drop vectors of records no longer in the catalog."""
        keys = list(keep) if keep is not None else sorted(self._index, key=self._index.get)
        keys = [k for k in keys if k in self._index]
        vectors = self._vectors[[self._index[k] for k in keys]] if keys else self._vectors[:0]
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp_vec, tmp_keys = self.dir / "vectors.tmp.npy", self.dir / "keys.tmp.json"
        np.save(tmp_vec, vectors, allow_pickle=False)
        tmp_keys.write_text(json.dumps(keys))
        os.replace(tmp_vec, self.dir / "vectors.npy")
        os.replace(tmp_keys, self.dir / "keys.json")

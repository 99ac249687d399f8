"""Query vectors kept on disk, so re-ranking a backlog after a catalog or knob change skips the encoders.

A request's embedding depends only on the encoder's weights, the prompt kind and the text, never on the
catalog: when institutes' records change, the whole backlog must be re-ranked (issue 7), but none of its
queries needs encoding again. The transformer is ~75% of a batch's time (BENCHMARKS.md "## Batch"), so a
warm re-rank is several times faster; a model change gives a new encoder id and simply misses.

Stored in one SQLite file (stdlib, safe against `kill -9` and concurrent runs, looked up per batch, so
memory stays flat however large the backlog): key = SHA-256 of the text (the text itself is not kept),
value = the float32 vector exactly as the encoder returned it, so a warm run gives the same rankings.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from matcher.encoders.base import Encoder, TextKind

_LOOKUP_CHUNK = 500
"""Keys per `IN (...)` query: below SQLite's bound-parameter limit."""


STORE_FORMAT = "alone"
"""Part of every stored vector's encoder key. Bumped when the same encoder began to give a text a different
vector: "alone" since int8 queries are encoded one per call (`OnnxEncoder.encode`); vectors stored
before were encoded with their batch and are not reused."""


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


class QueryVectorStore:
    """Vectors by (encoder id, kind, text hash) in a SQLite file; shared by every run on this machine."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS query_vectors ("
            " encoder TEXT NOT NULL, kind TEXT NOT NULL, key BLOB NOT NULL, vector BLOB NOT NULL,"
            " PRIMARY KEY (encoder, kind, key)) WITHOUT ROWID"
        )

    def get(self, encoder_id: str, kind: str, keys: Iterable[bytes], dim: int) -> dict[bytes, np.ndarray]:
        """The stored vectors among `keys`; a vector of the wrong size (a damaged row) counts as missing."""
        keys = list(dict.fromkeys(keys))
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, vector FROM query_vectors WHERE encoder = ? AND kind = ? AND key IN ({marks})",
                (encoder_id, kind, *chunk),
            )
            for key, blob in rows:
                if len(blob) == dim * 4:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, encoder_id: str, kind: str, vectors: dict[bytes, np.ndarray]) -> None:
        rows = [
            (encoder_id, kind, key, np.ascontiguousarray(v, dtype=np.float32).tobytes())
            for key, v in vectors.items()
        ]
        with self._db:  # one transaction per batch
            self._db.executemany("INSERT OR REPLACE INTO query_vectors VALUES (?, ?, ?, ?)", rows)

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM query_vectors").fetchone()[0])

    def close(self) -> None:
        self._db.close()


class CachingEncoder:
    """An `Encoder` that answers from a `QueryVectorStore` first and encodes each unseen text once.

    Same `id` and `dim` as the encoder it wraps: indexes and manifests cannot tell the difference.
    """

    def __init__(self, inner: Encoder, store: QueryVectorStore):
        self.inner = inner
        self.store = store
        self.id = inner.id
        self.dim = inner.dim
        self._store_id = f"{inner.id}#{STORE_FORMAT}"
        self.reused = 0
        """Texts answered from the store (or from an identical text earlier in the same call)."""
        self.encoded = 0
        """Texts the wrapped encoder had to run on."""

    def encode(self, texts: Sequence[str], *, kind: TextKind = "query", batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = [text_key(t) for t in texts]
        found = self.store.get(self._store_id, kind, keys, self.dim)
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
        if todo:
            fresh = self.inner.encode(list(todo.values()), kind=kind, batch_size=batch_size)
            new = dict(zip(todo, fresh, strict=True))
            self.store.put(self._store_id, kind, new)
            found.update(new)
        self.encoded += len(todo)
        self.reused += len(texts) - len(todo)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

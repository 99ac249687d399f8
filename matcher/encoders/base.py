"""The `Encoder` protocol: texts in, float32 L2-normalised rows out, with a stable id.

Queries (requests) and passages (capability records) may be encoded differently (E5 uses the
prompts `query: ` and `passage: `), so `encode` takes the kind of text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

TextKind = Literal["query", "passage"]

SMALL_BATCH = 16
"""Up to this many texts (one interactive request and its needs) are encoded on one thread: on a shared
2-core machine two threads made one request ~4x slower (BENCHMARKS.md)."""


@runtime_checkable
class Encoder(Protocol):
    """Anything that turns texts into unit vectors."""

    id: str
    """Stable identity of the weights: the embedding cache and index manifest are keyed by it."""
    dim: int

    def encode(self, texts: Sequence[str], *, kind: TextKind = "query", batch_size: int = 32) -> np.ndarray:
        """Return a C-contiguous float32 array of shape (len(texts), dim) with L2-normalised rows."""
        ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-normalise to unit length (zero rows stay zero), as C-contiguous float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)

"""A tiny deterministic encoder (hashed character n-grams) for fast tests and synthetic benchmarks.

It needs no weights, so tests of the index, cache and pipeline run in milliseconds; it is not
meant for real matching.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from matcher.encoders.base import TextKind, l2_normalize
from matcher.korean import normalize_text


class HashingEncoder:
    """Character 2-3-gram counts hashed into `dim` buckets."""

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.id = f"hashing-{dim}"

    def _bucket(self, gram: str) -> int:
        return int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=4).digest(), "little") % self.dim

    def encode(self, texts: Sequence[str], *, kind: TextKind = "query", batch_size: int = 32) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            text = normalize_text(text).lower().replace(" ", "")
            for n in (2, 3):
                for i in range(len(text) - n + 1):
                    out[row, self._bucket(text[i : i + n])] += 1.0
        return l2_normalize(out)

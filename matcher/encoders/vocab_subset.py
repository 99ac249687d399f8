"""e5's tokenizer, loaded in a quarter of the time: a slice of its vocabulary for Korean and Latin text.

multilingual-e5's Unigram vocabulary has 250,002 pieces, and `tokenizers` takes 1.0–1.6 s of CPU to load
it (the largest single cost of a cold `matcher match`, docs/speed.md). A Unigram tokenizer segments a
text using only pieces that occur in it, so for a text whose normalised characters all lie in
`ALPHABET` (Hangul, ASCII, Latin-1 symbols, Greek, arrows, math and CJK punctuation) a vocabulary of
just the pieces made of those characters (94k) gives the same segmentation; its ids are mapped back to
the full vocabulary's. Any other text (Chinese characters, accented letters, emoji …) goes through the
full tokenizer, loaded only then. `tests/test_vocab_subset.py` checks token equality on every catalog
and request text the repo ships.

The slice is written beside the model (`tokenizer.subset.json` and `tokenizer.subset.npz`) the first
time an encoder loads, keyed by the size and modification time of `tokenizer.json`; if it cannot be
written or does not match, the full tokenizer is used, so nothing but speed depends on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matcher.atomic import atomic_write_binary, write_text_atomic
from matcher.derived import source_stamp

SOURCE = "tokenizer.json"
SUBSET = "tokenizer.subset.json"
IDS = "tokenizer.subset.npz"
FORMAT = 1

ALPHABET = (
    (0x0020, 0x007E),  # ASCII
    (0x00A0, 0x00BF),  # Latin-1 symbols (°, ±, µ, ·), not its letters
    (0x00D7, 0x00D7),  # ×
    (0x00F7, 0x00F7),  # ÷
    (0x0370, 0x03FF),  # Greek
    (0x1100, 0x11FF),  # Hangul jamo
    (0x2000, 0x206F),  # general punctuation
    (0x2100, 0x218F),  # letter-like symbols, number forms
    (0x2190, 0x22FF),  # arrows, math operators
    (0x2460, 0x24FF),  # circled numbers
    (0x25A0, 0x25FF),  # geometric shapes
    (0x2581, 0x2581),  # ▁, the word-start mark
    (0x3000, 0x303F),  # CJK punctuation
    (0x3130, 0x318F),  # Hangul compatibility jamo
    (0xAC00, 0xD7A3),  # Hangul syllables
)
_OUTSIDE = re.compile("[^" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ALPHABET) + "]")


def within(normalized: str) -> bool:
    """True when every character of an already normalised text lies in `ALPHABET`."""
    return _OUTSIDE.search(normalized) is None


@dataclass(frozen=True)
class Tokens:
    """What the encoder needs of a tokenised text: ids of the full vocabulary and character offsets."""

    ids: list[int]
    offsets: list[tuple[int, int]]


def subset_of(tokenizer: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
    """The sliced tokenizer JSON and, per sliced id, the full vocabulary's id. Pieces keep their order,
    so the special tokens at the start keep their ids; special tokens are always kept."""
    vocab = tokenizer["model"]["vocab"]
    special = {t["id"] for t in tokenizer.get("added_tokens", [])}
    keep = [i for i, (piece, _) in enumerate(vocab) if i in special or within(piece)]
    new_id = {old: new for new, old in enumerate(keep)}
    sliced = dict(tokenizer)
    sliced["model"] = {**tokenizer["model"], "vocab": [vocab[i] for i in keep]}
    sliced["model"]["unk_id"] = new_id[tokenizer["model"]["unk_id"]]
    sliced["added_tokens"] = [{**t, "id": new_id[t["id"]]} for t in tokenizer.get("added_tokens", [])]
    post = tokenizer.get("post_processor") or {}
    for spec in (post.get("special_tokens") or {}).values():
        if any(new_id[i] != i for i in spec.get("ids", [])):
            raise ValueError("a special token of the template would change id")
    return sliced, np.asarray(keep, dtype=np.int64)


def _stamp(folder: Path) -> list[int]:
    return [int(x) for x in source_stamp(folder / SOURCE, FORMAT)]


def write_subset(folder: Path) -> bool:
    """Write the slice beside the model; False when the folder cannot be written."""
    sliced, ids = subset_of(json.loads((folder / SOURCE).read_text(encoding="utf-8")))
    try:
        write_text_atomic(folder / SUBSET, json.dumps(sliced, ensure_ascii=False))
        with atomic_write_binary(folder / IDS) as fh:
            np.savez(fh, ids=ids, stamp=np.asarray(_stamp(folder), dtype=np.int64))
    except OSError:
        return False
    return True


def _load_ids(folder: Path) -> np.ndarray | None:
    try:
        with np.load(folder / IDS) as data:
            if data["stamp"].tolist() != _stamp(folder):
                return None
            return data["ids"]
    except (OSError, KeyError, ValueError):
        return None


class SubsetTokenizer:
    """Tokenises exactly as the folder's `tokenizer.json`, through the slice where it can."""

    def __init__(self, folder: str | Path, max_tokens: int):
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.max_tokens = max_tokens
        self._full: Any = None
        ids = _load_ids(self.folder)
        if ids is None and write_subset(self.folder):
            ids = _load_ids(self.folder)
        self._ids = ids
        self._subset: Any = None
        if ids is not None:
            try:
                subset = Tokenizer.from_file(str(self.folder / SUBSET))
            except Exception:  # damaged or half-written by a concurrent first run: use the full one
                subset = None
            if subset is not None and subset.get_vocab_size(with_added_tokens=True) == len(ids):
                self._subset = self._configure(subset)

    def _configure(self, tokenizer: Any) -> Any:
        tokenizer.enable_truncation(self.max_tokens)
        tokenizer.no_padding()
        return tokenizer

    @property
    def full(self) -> Any:
        """The full tokenizer, loaded on first need."""
        if self._full is None:
            from tokenizers import Tokenizer

            self._full = self._configure(Tokenizer.from_file(str(self.folder / SOURCE)))
        return self._full

    def encode_batch(self, texts: Sequence[str]) -> list[Tokens]:
        out: list[Tokens | None] = [None] * len(texts)
        rest = list(range(len(texts)))
        if self._subset is not None:
            normalize = self._subset.normalizer.normalize_str
            easy = [i for i in rest if within(normalize(texts[i]))]
            for i, enc in zip(easy, self._subset.encode_batch([texts[i] for i in easy]), strict=True):
                out[i] = Tokens(self._ids[enc.ids].tolist(), enc.offsets)
            rest = sorted(set(rest) - set(easy))
        if rest:
            for i, enc in zip(rest, self.full.encode_batch([texts[i] for i in rest]), strict=True):
                out[i] = Tokens(list(enc.ids), enc.offsets)
        return out  # type: ignore[return-value]

    def encode(self, text: str) -> Tokens:
        return self.encode_batch([text])[0]

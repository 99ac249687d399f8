"""Institute cards: one text per institute, matched as a whole against the request by BM25.

Record retrieval asks "which record says what the request says"; a vague or role-type request
("we want a robot to take over this manual job") matches no single record well, but it matches an
institute's whole description. Two cards per institute, built from the catalog only (never from
requests):

  role  its names, summary, seats and their roles, and its profile and programme records
  full  the role card and every other record of the institute

Each card kind is a small BM25 index over the institutes; the re-ranker reads each institute's score
relative to the request's best and its rank (`rerank.FEATURE_NAMES`, `card_*`). Tokenizing every
record costs ~10 s on a small CPU, so the term weights are saved beside the indexes (`cards.npz`,
keyed by the catalog hash and the tokenizer) and rebuilt only when either changes.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from matcher.atomic import atomic_write_binary
from matcher.korean import TOKENIZER, tokenize, tokenize_many

if TYPE_CHECKING:
    from matcher.catalog import Catalog
    from matcher.schema import Capability, Institute

CARD_FORMAT = "matcher-cards/1"
CARD_KINDS = ("role", "full")
ROLE_KINDS = frozenset({"profile", "programme"})
"""Record kinds that describe the institute's role rather than one team, method or instrument."""
K1, B = 1.2, 0.75
"""BM25 parameters, the same as the record index's (bm25s defaults, Lucene idf)."""


def role_card(institute: Institute, records: Sequence[Capability]) -> str:
    """Names, summary, seats with their roles, and the profile and programme records' text."""
    parts = [institute.name_ko, *institute.aliases, institute.summary or ""]
    parts += [" ".join(p for p in (s.name, s.role) if p) for s in institute.sites]
    parts += [r.text() for r in records if r.kind.value in ROLE_KINDS]
    return "\n".join(p for p in parts if p)


def full_card(institute: Institute, records: Sequence[Capability]) -> str:
    """The role card and every other record of the institute."""
    rest = [r.text() for r in records if r.kind.value not in ROLE_KINDS]
    return "\n".join([role_card(institute, records), *rest])


def catalog_cards(catalog: Catalog) -> dict[str, list[str]]:
    """Both card kinds for every institute, in catalog order."""
    by_inst = {inst.id: catalog.records_of(inst.id) for inst in catalog.institutes}
    return {
        "role": [role_card(i, by_inst[i.id]) for i in catalog.institutes],
        "full": [full_card(i, by_inst[i.id]) for i in catalog.institutes],
    }


@dataclass
class CardIndex:
    """BM25 over a few long documents: `weights[d, t]` is token t's BM25 term score in document d."""

    vocab: dict[str, int]
    weights: np.ndarray

    @classmethod
    def from_tokens(cls, docs: Sequence[Sequence[str]], k1: float = K1, b: float = B) -> CardIndex:
        """Lucene BM25 as bm25s scores it: idf · tf / (tf + k1 · (1 − b + b · len / mean len)), with
        idf = ln(1 + (N − df + 0.5) / (df + 0.5))."""
        counts = [Counter(d) for d in docs]
        vocab = {t: i for i, t in enumerate(sorted({t for c in counts for t in c}))}
        tf = np.zeros((len(docs), len(vocab)), dtype=np.float64)
        for d, c in enumerate(counts):
            for t, n in c.items():
                tf[d, vocab[t]] = n
        n_docs = len(docs)
        df = (tf > 0).sum(axis=0)
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
        length = tf.sum(axis=1, keepdims=True)
        norm = k1 * (1 - b + b * length / max(float(length.mean()), 1e-9))
        weights = idf * tf / (tf + norm)
        return cls(vocab, weights.astype(np.float32))

    def scores(self, tokens: Sequence[str]) -> np.ndarray:
        """Sum of the query tokens' term scores per document (a repeated token counts again)."""
        cols = [self.vocab[t] for t in tokens if t in self.vocab]
        if not cols:
            return np.zeros(self.weights.shape[0], dtype=np.float64)
        return self.weights[:, cols].sum(axis=1, dtype=np.float64)


@dataclass
class InstituteCards:
    """Both card indexes of one catalog; `scores(text)` gives the raw scores the re-ranker reads."""

    key: str
    indexes: dict[str, CardIndex]

    @classmethod
    def build(cls, catalog: Catalog) -> InstituteCards:
        cards = catalog_cards(catalog)
        indexes = {kind: CardIndex.from_tokens(tokenize_many(texts)) for kind, texts in cards.items()}
        return cls(card_key(catalog), indexes)

    def scores(self, text: str) -> np.ndarray:
        """`(n_institutes, len(CARD_KINDS))` raw BM25 scores of one request text against every card."""
        tokens = tokenize(text)
        return np.stack([self.indexes[kind].scores(tokens) for kind in CARD_KINDS], axis=1)

    # ------------------------------------------------------------------ disk
    def save(self, path: str | Path) -> None:
        arrays = {f"{k}_weights": idx.weights for k, idx in self.indexes.items()}
        meta = {
            "format": CARD_FORMAT,
            "key": self.key,
            "vocab": {k: list(i.vocab) for k, i in self.indexes.items()},
        }
        with atomic_write_binary(path) as fh:
            np.savez(fh, meta=np.array(json.dumps(meta, ensure_ascii=False)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> InstituteCards | None:
        """The saved cards, or None when missing, unreadable or of another format."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != CARD_FORMAT:
                    return None
                indexes = {
                    k: CardIndex({t: i for i, t in enumerate(meta["vocab"][k])}, z[f"{k}_weights"])
                    for k in CARD_KINDS
                }
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None
        return cls(meta["key"], indexes)


def card_key(catalog: Catalog) -> str:
    """What the saved cards depend on: the catalog's content, the tokenizer and the card format."""
    return f"{CARD_FORMAT}|{catalog.content_hash}|{TOKENIZER}"


def load_cards(catalog: Catalog, path: str | Path) -> InstituteCards:
    """The saved cards when they match this catalog and tokenizer; else built and saved (best effort:
    a read-only index directory costs the build time on every start, never the match)."""
    saved = InstituteCards.load(path)
    if saved is not None and saved.key == card_key(catalog):
        return saved
    cards = InstituteCards.build(catalog)
    with contextlib.suppress(OSError):
        cards.save(path)
    return cards

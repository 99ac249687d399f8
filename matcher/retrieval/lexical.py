"""Korean lexical retrieval: BM25 (bm25s) over kiwipiepy content morphemes.

bm25s builds and saves the index; a saved index is searched from its arrays with numpy alone
(`Postings`), the same sums bm25s' numpy backend computes: importing bm25s (and the numba it pulls in)
cost 2-3 s of every `matcher match` start-up (docs/speed.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from matcher.korean import TOKENIZER, tokenize_many
from matcher.retrieval.base import Progress, QueryEncoder, Searches, SearchHits

if TYPE_CHECKING:
    from matcher.config import MatcherConfig
    from matcher.schema import Capability


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (scores, ids) of a dense score row, best first; ties broken by lower id."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    order = np.lexsort((part, -scores[part]))
    ids = part[order]
    return scores[ids].astype(np.float32), ids.astype(np.int64)


class Postings:
    """A saved bm25s index read as its CSC arrays: per token, the documents and their BM25 term scores.

    Only for score methods whose documents score 0 on absent tokens (bm25s' "lucene", "robertson",
    "atire"); `BM25Index.load` uses bm25s itself for the others.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.data = np.load(directory / "data.csc.index.npy", allow_pickle=False)
        self.indices = np.load(directory / "indices.csc.index.npy", allow_pickle=False)
        self.indptr = np.load(directory / "indptr.csc.index.npy", allow_pickle=False)
        self.vocab: dict[str, int] = json.loads((directory / "vocab.index.json").read_text(encoding="utf-8"))

    def scores(self, tokens: list[str], n_docs: int) -> np.ndarray:
        """Sum of the query tokens' term scores per document (a repeated token counts again, as in bm25s)."""
        out = np.zeros(n_docs, dtype=np.float32)
        for token in tokens:
            t = self.vocab.get(token)
            if t is not None:
                a, b = self.indptr[t], self.indptr[t + 1]
                out[self.indices[a:b]] += self.data[a:b]
        return out


ZERO_FOR_ABSENT = ("lucene", "robertson", "atire")


class BM25Index:
    """BM25 over morphemes; `search` returns FAISS-shaped `(scores, ids)`; ids -1 where nothing matched."""

    def __init__(self, retriever, n_docs: int):
        self.retriever = retriever
        """A `bm25s.BM25` (built here) or `Postings` (loaded from disk without bm25s)."""
        self.n_docs = n_docs

    @classmethod
    def build(cls, texts: Sequence[str]) -> BM25Index:
        return cls.from_tokens(tokenize_many(list(texts)))

    @classmethod
    def from_tokens(cls, corpus_tokens: list[list[str]]) -> BM25Index:
        import bm25s

        retriever = bm25s.BM25(k1=1.2, b=0.75)
        retriever.index([toks or ["∅"] for toks in corpus_tokens], show_progress=False)
        return cls(retriever, len(corpus_tokens))

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        if not query_tokens:
            return np.zeros(self.n_docs, dtype=np.float32)
        if isinstance(self.retriever, Postings):
            return self.retriever.scores(query_tokens, self.n_docs)
        return np.asarray(self.retriever.get_scores(query_tokens), dtype=np.float32)

    def search_tokens(self, queries: list[list[str]], k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.n_docs)
        out_s = np.zeros((len(queries), k), dtype=np.float32)
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        for row, toks in enumerate(queries):
            s, i = top_k(self.scores(toks), k)
            keep = s > 0
            out_s[row, : keep.sum()] = s[keep]
            out_i[row, : keep.sum()] = i[keep]
        return out_s, out_i

    def search(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.search_tokens(tokenize_many(list(texts)), k)

    def save(self, directory: str | Path) -> None:
        if isinstance(self.retriever, Postings):  # loaded from disk: the saved files are the index
            import shutil

            shutil.copytree(self.retriever.directory, directory, dirs_exist_ok=True)
            return
        self.retriever.save(str(directory))

    @classmethod
    def load(cls, directory: str | Path, n_docs: int) -> BM25Index:
        directory = Path(directory)
        params = json.loads((directory / "params.index.json").read_text(encoding="utf-8"))
        absent_scores = (directory / "nonoccurrence_array.index.npy").exists()
        if params.get("method") in ZERO_FOR_ABSENT and not absent_scores:
            return cls(Postings(directory), n_docs)
        import bm25s

        return cls(bm25s.BM25.load(str(directory)), n_docs)


class BM25Retriever(Searches):
    """The `bm25` retriever: queries become kiwi morphemes, then BM25 over the records' morphemes."""

    section = "lexical"
    slowest_query_load = True  # kiwi's start-up, ~1.7 s of CPU

    def __init__(self, index: BM25Index, name: str = "bm25"):
        self.name = name
        self.index = index

    @classmethod
    def build(
        cls, name: str, records: Sequence[Capability], config: MatcherConfig, progress: Progress | None = None
    ) -> BM25Retriever:
        if progress:
            progress("BM25 (kiwi morphemes)", 0, 1)
        return cls(BM25Index.build([r.text() for r in records]), name)

    @classmethod
    def load(
        cls, name: str, directory: Path, entry: dict, records: Sequence[Capability], config: MatcherConfig
    ) -> BM25Retriever:
        return cls(BM25Index.load(directory / entry["dir"], len(records)), name)

    @classmethod
    def staleness(cls, name: str, entry: dict | None, config: MatcherConfig) -> list[str]:
        if entry is None:
            return ["the BM25 index is missing"]
        if entry.get("tokenizer") != TOKENIZER:
            return [f"the BM25 index was built with another tokenizer ({entry.get('tokenizer')!r})"]
        return []

    def entry(self) -> dict:
        return {"dir": self.name, "tokenizer": TOKENIZER}

    def save(self, directory: Path) -> None:
        self.index.save(directory / self.name)

    def encode_queries(self, texts: Sequence[str]) -> list[list[str]]:
        return tokenize_many(list(texts))

    @classmethod
    def query_encoder(cls, name: str, config: MatcherConfig) -> QueryEncoder:
        return tokenize_many

    def search_encoded(self, queries: list[list[str]], k: int) -> SearchHits:
        return self.index.search_tokens(queries, k)

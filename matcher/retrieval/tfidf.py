"""TF-IDF over character 2-4-grams (scikit-learn): the simplest lexical baseline, robust to 조사.

Saved without pickle: the vocabulary as JSON, the idf weights as .npy and the record matrix as a
sparse .npz; loading rebuilds the same vectorizer around them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from matcher.korean import normalize_text
from matcher.retrieval.base import Progress, Searches, SearchHits
from matcher.retrieval.lexical import top_k

if TYPE_CHECKING:
    from matcher.config import MatcherConfig
    from matcher.schema import Capability


def _preprocess(text: str) -> str:
    return normalize_text(text).lower()


def _vectorizer(vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 4),
        sublinear_tf=True,
        min_df=1,
        preprocessor=_preprocess,
        vocabulary=vocabulary,
    )


class TfidfIndex:
    """Cosine similarity of tf-idf rows (sklearn's rows are L2-normalised)."""

    def __init__(self, vectorizer: TfidfVectorizer, matrix):
        self.vectorizer = vectorizer
        self.matrix = matrix

    @classmethod
    def build(cls, texts: Sequence[str]) -> TfidfIndex:
        vectorizer = _vectorizer()
        return cls(vectorizer, vectorizer.fit_transform(list(texts)))

    def transform(self, texts: Sequence[str]):
        return self.vectorizer.transform(list(texts))

    def search_rows(self, rows, k: int) -> SearchHits:
        sims = (rows @ self.matrix.T).toarray().astype(np.float32)
        n = sims.shape[0]
        k = min(k, sims.shape[1])
        out_s = np.zeros((n, k), dtype=np.float32)
        out_i = np.full((n, k), -1, dtype=np.int64)
        for row in range(n):
            s, i = top_k(sims[row], k)
            keep = s > 0
            out_s[row, : keep.sum()], out_i[row, : keep.sum()] = s[keep], i[keep]
        return out_s, out_i

    def search(self, texts: Sequence[str], k: int) -> SearchHits:
        return self.search_rows(self.transform(texts), k)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocabulary = {term: int(i) for term, i in self.vectorizer.vocabulary_.items()}
        (directory / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=False))
        np.save(directory / "idf.npy", self.vectorizer.idf_, allow_pickle=False)
        sp.save_npz(directory / "matrix.npz", sp.csr_matrix(self.matrix))

    @classmethod
    def load(cls, directory: str | Path) -> TfidfIndex:
        directory = Path(directory)
        vectorizer = _vectorizer(json.loads((directory / "vocabulary.json").read_text()))
        vectorizer.idf_ = np.load(directory / "idf.npy", allow_pickle=False)
        return cls(vectorizer, sp.load_npz(directory / "matrix.npz"))


class TfidfRetriever(Searches):
    """The `tfidf` retriever (a baseline)."""

    section = "lexical"

    def __init__(self, index: TfidfIndex, name: str = "tfidf"):
        self.name = name
        self.index = index

    @classmethod
    def build(
        cls, name: str, records: Sequence[Capability], config: MatcherConfig, progress: Progress | None = None
    ) -> TfidfRetriever:
        return cls(TfidfIndex.build([r.text() for r in records]), name)

    @classmethod
    def load(
        cls, name: str, directory: Path, entry: dict, records: Sequence[Capability], config: MatcherConfig
    ) -> TfidfRetriever:
        return cls(TfidfIndex.load(directory / entry["dir"]), name)

    @classmethod
    def staleness(cls, name: str, entry: dict | None, config: MatcherConfig) -> list[str]:
        return ["the TF-IDF index is missing"] if entry is None else []

    def entry(self) -> dict:
        return {"dir": self.name, "analyzer": "char_wb 2-4-grams"}

    def save(self, directory: Path) -> None:
        self.index.save(directory / self.name)

    def encode_queries(self, texts: Sequence[str]):
        return self.index.transform(texts)

    @classmethod
    def query_encoder(cls, name: str, config: MatcherConfig) -> None:
        return None  # the query rows need the fitted vocabulary, i.e. the index

    def search_encoded(self, queries, k: int) -> SearchHits:
        return self.index.search_rows(queries, k)

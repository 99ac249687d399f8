"""TF-IDF over character 2-4-grams (scikit-learn): the simplest lexical baseline, robust to 조사."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from matcher.korean import normalize_text
from matcher.retrieval.lexical import top_k


class TfidfIndex:
    def __init__(self, vectorizer: TfidfVectorizer, matrix):
        self.vectorizer = vectorizer
        self.matrix = matrix

    @classmethod
    def build(cls, texts: Sequence[str]) -> TfidfIndex:
        vectorizer = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 4),
            sublinear_tf=True,
            min_df=1,
            preprocessor=lambda t: normalize_text(t).lower(),
        )
        return cls(vectorizer, vectorizer.fit_transform(list(texts)))

    def search(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = (self.vectorizer.transform(list(texts)) @ self.matrix.T).toarray().astype(np.float32)
        k = min(k, sims.shape[1])
        out_s = np.zeros((len(texts), k), dtype=np.float32)
        out_i = np.full((len(texts), k), -1, dtype=np.int64)
        for row in range(len(texts)):
            s, i = top_k(sims[row], k)
            keep = s > 0
            out_s[row, : keep.sum()], out_i[row, : keep.sum()] = s[keep], i[keep]
        return out_s, out_i

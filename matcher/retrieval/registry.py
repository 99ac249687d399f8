"""Retrievers by name: the one place that knows which class serves `e5`, `bm25`, `tfidf`, ...

Every caller (index building, loading, staleness, search, benchmarks) asks here, so adding a
retriever is one entry in `REGISTRY` and one name in `config.Retriever`.
"""

from __future__ import annotations

from matcher.retrieval.base import Retriever
from matcher.retrieval.dense import DenseRetriever
from matcher.retrieval.lexical import BM25Retriever
from matcher.retrieval.tfidf import TfidfRetriever

REGISTRY: dict[str, type[Retriever]] = {
    "e5": DenseRetriever,
    "use": DenseRetriever,
    "hashing": DenseRetriever,
    "bm25": BM25Retriever,
    "tfidf": TfidfRetriever,
}


def retriever_class(name: str) -> type[Retriever]:
    """The class of a retriever name (ValueError for an unknown name)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown retriever {name!r} (known: {', '.join(REGISTRY)})") from None

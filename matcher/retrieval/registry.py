"""Retrievers by name: the one place that knows which class serves `e5`, `bm25`, `tfidf`, ...

Every caller (index building, loading, staleness, search, benchmarks) asks here, so adding a
retriever is one entry in `REGISTRY` and one name in `config.Retriever`. Classes are named, not
imported, until asked for: a command then imports only the retrievers its config uses (tf-idf pulls in
scikit-learn and scipy, seconds of start-up that a hybrid `matcher match` never needs; docs/speed.md).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matcher.retrieval.base import Retriever

REGISTRY: dict[str, str] = {
    "e5": "matcher.retrieval.dense:DenseRetriever",
    "use": "matcher.retrieval.dense:DenseRetriever",
    "hashing": "matcher.retrieval.dense:DenseRetriever",
    "bm25": "matcher.retrieval.lexical:BM25Retriever",
    "tfidf": "matcher.retrieval.tfidf:TfidfRetriever",
}
"""Retriever name -> "module:Class" of the class that builds, loads and searches it."""


def retriever_class(name: str) -> type[Retriever]:
    """The class of a retriever name (ValueError for an unknown name), imported on first use."""
    try:
        module, _, cls = REGISTRY[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown retriever {name!r} (known: {', '.join(REGISTRY)})") from None
    return getattr(import_module(module), cls)

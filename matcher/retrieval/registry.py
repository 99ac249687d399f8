"""Retrievers by name: the one place that knows which class serves `e5`, `bm25`, `tfidf`, ...

Every caller (index building, loading, staleness, search, benchmarks) asks here, so adding a
retriever is one entry in `REGISTRY` and one name in `config.Retriever`. Classes are imported when
first asked for, so a command loads only the retrievers its config names (and their packages).
"""

from __future__ import annotations

from importlib import import_module

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
    """The class of a retriever name (ValueError for an unknown name)."""
    try:
        module, _, cls = REGISTRY[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown retriever {name!r} (known: {', '.join(REGISTRY)})") from None
    return getattr(import_module(module), cls)

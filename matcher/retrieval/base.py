"""The `Retriever` protocol: one shape for every way of finding capability records for a text.

A retriever answers `search(texts, k) -> (scores, ids)`, two `(len(texts), k)` arrays, best first,
id -1 for "no result" (FAISS's convention, kept by every retriever and by fusion). Its class builds
it over the catalog's records, loads it from an index directory, and says why a saved one cannot
serve a config (`staleness`); the registry (`matcher.retrieval.registry`) finds the class by name.
Searching is split in two (`encode_queries`, then `search_encoded`) so a benchmark can time the
per-query encoding apart from the index look-up without re-implementing either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    from matcher.config import MatcherConfig
    from matcher.encoders.query_cache import QueryVectorStore
    from matcher.schema import Capability

SearchHits = tuple[np.ndarray, np.ndarray]
"""`(scores, ids)`, each of shape `(n_queries, k)`, as FAISS returns them."""
Progress = Callable[[str, int, int], None]
QueryEncoder = Callable[[list[str]], Any]


class Retriever(Protocol):
    """A built or loaded retriever over the records of one catalog."""

    name: str
    section: ClassVar[str]
    """The manifest section its entry lives in: `dense` or `lexical`."""
    slowest_query_load: ClassVar[bool]
    """Its `query_encoder` takes longest to load (kiwi): a cold match's other workers yield to it."""

    @classmethod
    def build(
        cls, name: str, records: Sequence[Capability], config: MatcherConfig, progress: Progress | None = None
    ) -> Retriever: ...

    @classmethod
    def load(
        cls, name: str, directory: Path, entry: dict, records: Sequence[Capability], config: MatcherConfig
    ) -> Retriever: ...

    @classmethod
    def staleness(cls, name: str, entry: dict | None, config: MatcherConfig) -> list[str]:
        """Why the saved entry cannot serve `config` (empty: it can); None: not in the index."""
        ...

    def entry(self) -> dict:
        """Its manifest entry (JSON: what was built, with what, where its files are)."""
        ...

    def save(self, directory: Path) -> None: ...

    def encode_queries(self, texts: Sequence[str]) -> Any:
        """The per-query representation the index searches with (vectors, tokens, tf-idf rows)."""
        ...

    @classmethod
    def query_encoder(cls, name: str, config: MatcherConfig) -> QueryEncoder | None:
        """`encode_queries` without the index, for a process that has not loaded it (`matcher.prefetch`);
        None when queries need the index itself (tf-idf's fitted vocabulary)."""
        ...

    def search_encoded(self, queries: Any, k: int) -> SearchHits: ...

    def search(self, texts: Sequence[str], k: int) -> SearchHits: ...

    def with_query_cache(self, store: QueryVectorStore) -> Retriever:
        """The same retriever, answering query texts seen before from `store` where it encodes them."""
        ...


class Searches:
    """`search` for every retriever (encode the texts, then look them up); no query cache by default."""

    slowest_query_load: ClassVar[bool] = False

    def search(self, texts: Sequence[str], k: int) -> SearchHits:
        return self.search_encoded(self.encode_queries(texts), k)  # type: ignore[attr-defined]

    def with_query_cache(self, store: QueryVectorStore) -> Searches:
        return self

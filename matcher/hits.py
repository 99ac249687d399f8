"""The values passed between the pipeline's stages: prepared queries and their hits.

A request becomes queries (the whole text first, then its needs); every retriever answers every
query; fusion turns each query's answers into one `QueryHits`. These types sit below the engine, the
ranking stage and the re-ranker features, so none of them has to import another to name its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from matcher.config import MatcherConfig
from matcher.korean import split_needs
from matcher.schema import Request

Retrieved = dict[str, tuple[np.ndarray, np.ndarray]]
"""Every retriever's `(scores, ids)` arrays, shape `(n_queries, k)`, by retriever name."""


@dataclass
class Prepared:
    """A batch of requests with their needs, flattened into queries."""

    requests: list[Request]
    texts: list[str]
    needs: list[list[str]]
    queries: list[str]
    spans: list[tuple[int, int]]
    """`queries[a:b]` belong to request i: the whole request at `a`, then its needs."""


@dataclass
class QueryHits:
    """Per query (whole request or one need): fused record hits, institute scores, raw retriever peaks."""

    ids: np.ndarray
    scores: np.ndarray
    institute_scores: np.ndarray
    peaks: dict[str, float]


def request_needs(text: str, config: MatcherConfig) -> list[str]:
    """The needs searched on their own: none unless the text splits into at least two.

    One need would only repeat the whole request, so a single-clause request is searched once.
    """
    needs = split_needs(
        text,
        max_needs=config.max_needs,
        min_chars=config.min_need_chars,
        fold_intro=config.fold_company_intro,
    )
    return needs if len(needs) >= 2 else []


def prepare(requests: Sequence[Request], config: MatcherConfig) -> Prepared:
    """Texts, needs and the flat list of queries (whole request first, then its needs)."""
    texts = [r.full_text()[: config.max_text_chars] for r in requests]
    needs = [request_needs(t, config) for t in texts]
    queries: list[str] = []
    spans: list[tuple[int, int]] = []
    for text, parts in zip(texts, needs, strict=True):
        spans.append((len(queries), len(queries) + 1 + len(parts)))
        queries += [text, *parts]
    return Prepared(list(requests), texts, needs, queries, spans)

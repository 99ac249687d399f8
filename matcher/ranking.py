"""The InstituteRanker: retriever hits in, one score per institute (and the re-ranker's features) out.

Per query it fuses the retrievers' record hits (fusion) and aggregates them per institute
(aggregate); per request it mixes the whole request with the mean of its needs and, when a learned
re-ranker is loaded, re-scores institutes from their feature rows (rerank). Training collects the
feature rows from here too (`features`), so training and serving compute them with the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from matcher.aggregate import aggregate
from matcher.cards import InstituteCards, load_cards
from matcher.config import MatcherConfig
from matcher.fusion import rrf, rrf_ceiling, weighted_scores
from matcher.hits import QueryHits, Retrieved
from matcher.index_store import IndexSet
from matcher.region import catalog_seats, request_region
from matcher.rerank import LinearReranker, institute_features, record_kinds
from matcher.schema import Request

CARDS_FILE = "cards.npz"


class InstituteRanker:
    """Scores institutes for the queries of a request under one config (and optional re-ranker)."""

    def __init__(self, indexes: IndexSet, config: MatcherConfig, reranker: LinearReranker | None = None):
        self.indexes = indexes
        self.config = config
        self.reranker = reranker
        self.n_institutes = len(indexes.catalog.institutes)
        self._prior = reranker.prior_vector(indexes.catalog.institute_ids) if reranker else None

    @cached_property
    def _kinds(self) -> np.ndarray:
        """Kind code of every record: only the feature rows need it."""
        return record_kinds(self.indexes.records)

    @cached_property
    def _seats(self) -> list:
        """Every institute's head office and seats (region.institute_seats): only the features need them."""
        return catalog_seats(self.indexes.catalog.institutes)

    @cached_property
    def _cards(self) -> InstituteCards:
        """The institute cards, saved beside the indexes: only the features need them."""
        return load_cards(self.indexes.catalog, Path(self.config.index_dir) / CARDS_FILE)

    def cards(self, text: str) -> np.ndarray:
        """The request's BM25 score against every institute's cards, `(n_inst, len(CARD_KINDS))`."""
        return self._cards.scores(text)

    def region(self, request: Request, text: str) -> np.ndarray:
        """The request's region feature rows: its places (the `region` field, then the text) against every
        institute's seats; all zero when no place is named. A feature, never a filter."""
        return request_region(text, request.region, self._seats)

    def fuse(self, retrieved: Retrieved, n_queries: int) -> list[QueryHits]:
        """Each query's fused record hits, institute scores and every retriever's best raw score."""
        cfg = self.config
        names = [n for n in cfg.retrievers if n in retrieved]
        weights = [cfg.weights_for(n) for n in names]
        out = []
        for q in range(n_queries):
            row = [(retrieved[n][0][q], retrieved[n][1][q]) for n in names]
            if cfg.fusion == "rrf":
                scores, ids = rrf(row, weights, cfg.rrf_k)
                scores = scores / rrf_ceiling(weights, cfg.rrf_k)
            else:
                scores, ids = weighted_scores(row, weights)
                scores = scores / sum(weights)
            inst = aggregate(
                cfg.aggregation,
                ids,
                scores,
                self.indexes.owner,
                self.n_institutes,
                k=cfg.agg_k,
                temperature=cfg.agg_temperature,
            )
            peaks = {
                n: float(s[q][i[q] >= 0].max()) if (i[q] >= 0).any() else 0.0
                for n, (s, i) in ((n, retrieved[n]) for n in names)
            }
            out.append(QueryHits(ids, scores, inst, peaks))
        return out

    def mix(self, hits: Sequence[QueryHits]) -> np.ndarray:
        """`whole_weight` × the whole request's institute scores + the rest × the mean over its needs."""
        score = hits[0].institute_scores.copy()
        if len(hits) > 1:
            need_mean = np.mean([h.institute_scores for h in hits[1:]], axis=0)
            score = self.config.whole_weight * score + (1 - self.config.whole_weight) * need_mean
        return score

    def features(
        self,
        hits: Sequence[QueryHits],
        score: np.ndarray | None = None,
        region: np.ndarray | None = None,
        cards: np.ndarray | None = None,
    ) -> np.ndarray:
        """The re-ranker's feature rows for one request (prior column 0 when no model is loaded; region
        and card columns 0 when `region` and `cards`, from `self.region` and `self.cards`, are not
        given)."""
        score = self.mix(hits) if score is None else score
        return institute_features(
            score,
            hits[0],
            hits[1:],
            self.indexes.owner,
            self.n_institutes,
            kinds=self._kinds,
            prior=self._prior,
            region=region,
            cards=cards,
        )

    def rank(
        self, hits: Sequence[QueryHits], region: np.ndarray | None = None, cards: np.ndarray | None = None
    ) -> np.ndarray:
        """One request's institute scores: mixed, then re-scored when a re-ranker is loaded."""
        score = self.mix(hits)
        if self.reranker is None:
            return score
        return self.reranker.score(self.features(hits, score, region, cards))

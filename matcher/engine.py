"""`Matcher`: a request in, ranked single and joint recommendations with evidence out.

The orchestrator of DESIGN.md's arrows; each stage is its own module:
  prepare queries (hits) → search every retriever (index_store) → fuse, aggregate, mix whole and needs,
  re-rank (ranking.InstituteRanker) → joint teams (joint.JointPlanner) → evidence (evidence).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from matcher.catalog_cache import catalog_of
from matcher.config import MatcherConfig
from matcher.encoders.query_cache import QueryVectorStore
from matcher.evidence import members_evidence
from matcher.hits import Prepared, QueryHits, Retrieved, prepare
from matcher.index_store import IndexSet, Progress, load_indexes
from matcher.joint import JointPlanner, Proposal
from matcher.korean import is_company_intro
from matcher.ranking import InstituteRanker
from matcher.rerank import LinearReranker
from matcher.result import MatchResult, Recommendation
from matcher.schema import Request


class Matcher:
    """Matches requests against the catalog's indexes under one `MatcherConfig` (a variant planner may
    be passed, as bench/joint_variants.py does)."""

    def __init__(
        self,
        indexes: IndexSet,
        config: MatcherConfig,
        reranker: LinearReranker | None = None,
        planner: JointPlanner | None = None,
    ):
        self.indexes = indexes
        self.config = config
        self.catalog = indexes.catalog
        self.reranker = reranker
        self.planner = planner or JointPlanner()
        self.ranker = InstituteRanker(indexes, config, reranker)

    @classmethod
    def from_config(
        cls, config: MatcherConfig, *, rebuild: bool = True, progress: Progress | None = None, on_rebuild=None
    ) -> Matcher:
        """Load the catalog and indexes named by the config (building a missing or stale index)."""
        catalog = catalog_of(config)
        indexes = load_indexes(catalog, config, rebuild=rebuild, progress=progress, on_rebuild=on_rebuild)
        reranker = LinearReranker.load(config.reranker) if config.reranker else None
        return cls(indexes, config, reranker)

    def match(self, request: Request | str, encoded: Mapping[str, Any] | None = None) -> MatchResult:
        """One request; `encoded`: its queries already encoded per retriever (`matcher.prefetch`)."""
        if isinstance(request, str):
            request = Request(id="request", text=request)
        return self.match_batch([request], encoded)[0]

    WARM_UP_TEXT = "알루미늄 다이캐스팅 부품의 기공 불량 원인 분석과 진동 내구 시험"

    def warm_up(self) -> None:
        """Load every model a request needs (kiwi, the encoders load on first use) by matching one
        fixed sentence, so a desk answers its first request as fast as the next ones."""
        self.match(Request(id="warm-up", text=self.WARM_UP_TEXT))

    def match_many(self, requests: Iterable[Request], batch_size: int = 32) -> Iterator[MatchResult]:
        """Stream results, encoding requests in batches (memory stays flat for any input size)."""
        batch: list[Request] = []
        for request in requests:
            batch.append(request)
            if len(batch) >= batch_size:
                yield from self.match_batch(batch)
                batch = []
        if batch:
            yield from self.match_batch(batch)

    def match_batch(
        self, requests: Sequence[Request], encoded: Mapping[str, Any] | None = None
    ) -> list[MatchResult]:
        start = time.perf_counter()
        prepared = self.prepare(requests)
        return self.rank(prepared, self.retrieve(prepared.queries, encoded), started=start)

    def with_config(self, config: MatcherConfig) -> Matcher:
        """The same indexes under other knobs (for tuning: retrieval is reused, only ranking changes).

        Index and search-time knobs (`index_type`, `hnsw_ef_search`, ...) stay the loaded indexes'."""
        return Matcher(self.indexes, config, self.reranker, self.planner)

    def with_query_cache(self, store: QueryVectorStore) -> Matcher:
        """The same matcher, its dense encoders answering texts seen before from `store`.

        For re-ranking a backlog: after a catalog or knob change no query needs encoding again.
        """
        return Matcher(self.indexes.with_query_cache(store), self.config, self.reranker, self.planner)

    def query_cache_counts(self) -> dict[str, int]:
        """Texts answered from the query cache and texts encoded, over every dense retriever."""
        return self.indexes.query_cache_counts()

    def prepare(self, requests: Sequence[Request]) -> Prepared:
        """Texts, needs and the flat list of queries (whole request first, then its needs)."""
        return prepare(requests, self.config)

    def retrieve(self, queries: list[str], encoded: Mapping[str, Any] | None = None) -> Retrieved:
        """Every retriever's `(scores, ids)` hits for every query: the expensive, knob-independent part."""
        return self.indexes.search(queries, self.config, encoded)

    def rank(
        self, prepared: Prepared, retrieved: Retrieved, started: float | None = None
    ) -> list[MatchResult]:
        """Fuse, aggregate, plan teams and attach evidence under this matcher's knobs."""
        hits = self.ranker.fuse(retrieved, len(prepared.queries))
        elapsed = time.perf_counter() - started if started is not None else 0.0
        per_request_ms = elapsed * 1000 / max(1, len(prepared.requests))
        return [
            self._result(req, text, needs, hits[a:b], per_request_ms)
            for req, text, needs, (a, b) in zip(
                prepared.requests, prepared.texts, prepared.needs, prepared.spans, strict=True
            )
        ]

    def _result(
        self, request: Request, text: str, needs: list[str], hits: list[QueryHits], latency_ms: float
    ) -> MatchResult:
        """Order institutes, add joint teams over the best candidates, write out the top with evidence."""
        cfg, institutes = self.config, self.catalog.institutes
        region, cards = None, None
        if self.reranker is not None:
            region = self.ranker.region(request, text)
            cards = self.ranker.cards(text) if self.reranker.uses_cards else None
        score = self.ranker.rank(hits, region, cards)
        order = np.lexsort((np.arange(len(score)), -score))
        confidence = float(score[order[0]]) if len(score) else 0.0
        abstained = confidence < cfg.abstain_threshold or not np.any(score > 0)
        singles = [int(i) for i in order[: max(cfg.top, cfg.joint_candidates)] if score[i] > 0]
        recs: list[Proposal] = [(float(score[i]), (i,), ()) for i in singles]
        asks = [j for j, need in enumerate(needs) if not (cfg.joint_skip_intro and is_company_intro(need))]
        if cfg.joint and asks and len(singles) >= 2:
            rows = np.array([hits[1 + j].institute_scores for j in asks] + [hits[0].institute_scores])
            ids = self.catalog.institute_ids
            recs += self.planner.propose(
                rows, [*(needs[j] for j in asks), text], singles[: cfg.joint_candidates], score, ids, cfg
            )
        recs.sort(key=lambda r: (-r[0], len(r[1])))
        labels = [text, *needs]
        evidence = cfg.evidence_per_institute
        recommendations = tuple(
            Recommendation(
                rank=rank,
                institutes=tuple(institutes[m].id for m in members),
                names=tuple(institutes[m].name_ko for m in members),
                score=value,
                kind="joint" if len(members) > 1 else "single",
                evidence=members_evidence(members, hits, labels, self.indexes, evidence),
                covers=covers,
            )
            for rank, (value, members, covers) in enumerate(recs[: cfg.top], start=1)
        )
        return MatchResult(request.id, text, tuple(needs), abstained, confidence, recommendations, latency_ms)

"""`Matcher`: a request in, ranked single and joint recommendations with evidence out.

Flow per batch of requests (each step one pure function elsewhere):
  split into needs (korean.split_needs) → search every retriever for the whole request and each need
  → fuse record hits (fusion) → institute scores per query (aggregate) → combine whole and needs
  → optional learned re-ranker (rerank) → joint teams over the top candidates (joint) → evidence.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from matcher.aggregate import aggregate
from matcher.catalog import load_catalog
from matcher.config import MatcherConfig
from matcher.encoders.query_cache import CachingEncoder, QueryVectorStore
from matcher.fusion import rrf, rrf_ceiling, weighted_scores
from matcher.index_store import IndexSet, Progress, load_indexes
from matcher.joint import coverage_matrix, plan_teams
from matcher.korean import split_needs, tokenize_many
from matcher.result import Cover, Evidence, MatchResult, Recommendation
from matcher.schema import Request


@dataclass
class Prepared:
    """A batch of requests with their needs, flattened into queries."""

    requests: list[Request]
    texts: list[str]
    needs: list[list[str]]
    queries: list[str]
    spans: list[tuple[int, int]]


@dataclass
class QueryHits:
    """Per query (whole request or one need): fused record hits, institute scores, raw retriever peaks."""

    ids: np.ndarray
    scores: np.ndarray
    institute_scores: np.ndarray
    peaks: dict[str, float]


class Matcher:
    """Matches requests against the catalog's indexes under one `MatcherConfig`."""

    def __init__(self, indexes: IndexSet, config: MatcherConfig, reranker=None):
        self.indexes = indexes
        self.config = config
        self.catalog = indexes.catalog
        self.reranker = reranker
        self._n_inst = len(self.catalog.institutes)
        self._kinds = None
        if reranker is not None:  # the re-ranker's features count hits per record kind
            from matcher.rerank import record_kinds

            self._kinds = record_kinds(indexes.records)

    @classmethod
    def from_config(
        cls, config: MatcherConfig, *, rebuild: bool = True, progress: Progress | None = None, on_rebuild=None
    ) -> Matcher:
        """Load the catalog and indexes named by the config (building a missing or stale index)."""
        catalog = load_catalog(config.catalog_dir)
        indexes = load_indexes(catalog, config, rebuild=rebuild, progress=progress, on_rebuild=on_rebuild)
        reranker = None
        if config.reranker:
            from matcher.rerank import LinearReranker

            reranker = LinearReranker.load(config.reranker)
        return cls(indexes, config, reranker)

    # ------------------------------------------------------------------ public API
    def match(self, request: Request | str) -> MatchResult:
        if isinstance(request, str):
            request = Request(id="request", text=request)
        return self.match_batch([request])[0]

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

    def match_batch(self, requests: Sequence[Request]) -> list[MatchResult]:
        start = time.perf_counter()
        prepared = self.prepare(requests)
        retrieved = self.retrieve(prepared.queries)
        return self.rank(prepared, retrieved, started=start)

    def with_config(self, config: MatcherConfig) -> Matcher:
        """The same indexes under other knobs (for tuning: retrieval is reused, only ranking changes)."""
        return Matcher(self.indexes, config, self.reranker)

    def with_query_cache(self, store: QueryVectorStore) -> Matcher:
        """The same matcher, its dense encoders answering texts seen before from `store`.

        For re-ranking a backlog: after a catalog or knob change no query needs encoding again.
        """
        dense = {n: (CachingEncoder(enc, store), index) for n, (enc, index) in self.indexes.dense.items()}
        return Matcher(replace(self.indexes, dense=dense), self.config, self.reranker)

    def query_cache_counts(self) -> dict[str, int]:
        """Texts answered from the query cache and texts encoded, over every dense retriever."""
        cached = [enc for enc, _ in self.indexes.dense.values() if isinstance(enc, CachingEncoder)]
        return {"reused": sum(e.reused for e in cached), "encoded": sum(e.encoded for e in cached)}

    # ------------------------------------------------------------------ retrieval
    def prepare(self, requests: Sequence[Request]) -> Prepared:
        """Texts, needs and the flat list of queries (whole request first, then its needs)."""
        cfg = self.config
        texts = [r.full_text()[: cfg.max_text_chars] for r in requests]
        needs = [split_needs(t, max_needs=cfg.max_needs, min_chars=cfg.min_need_chars) for t in texts]
        needs = [n if len(n) >= 2 else [] for n in needs]
        queries: list[str] = []
        spans: list[tuple[int, int]] = []
        for text, parts in zip(texts, needs, strict=True):
            spans.append((len(queries), len(queries) + 1 + len(parts)))
            queries += [text, *parts]
        return Prepared(list(requests), texts, needs, queries, spans)

    def retrieve(self, queries: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every retriever's `(scores, ids)` hits for every query: the expensive, knob-independent part."""
        cfg, idx = self.config, self.indexes
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in cfg.retrievers:
            if name in idx.dense:
                encoder, index = idx.dense[name]
                vectors = encoder.encode(queries, kind="query", batch_size=cfg.encode_batch_size)
                out[name] = index.search(
                    vectors, cfg.hits_per_need, ef_search=cfg.hnsw_ef_search, nprobe=cfg.ivf_nprobe
                )
            elif name == "bm25" and idx.bm25 is not None:
                out[name] = idx.bm25.search_tokens(tokenize_many(queries), cfg.hits_per_need)
            elif name == "tfidf" and idx.tfidf is not None:
                out[name] = idx.tfidf.search(queries, cfg.hits_per_need)
            else:
                raise RuntimeError(f"retriever {name!r} has no index loaded")
        return out

    def rank(
        self,
        prepared: Prepared,
        retrieved: dict[str, tuple[np.ndarray, np.ndarray]],
        started: float | None = None,
    ) -> list[MatchResult]:
        """Fuse, aggregate, plan teams and attach evidence under this matcher's knobs."""
        hits = self._fuse(retrieved, len(prepared.queries))
        elapsed = time.perf_counter() - started if started is not None else 0.0
        per_request_ms = elapsed * 1000 / max(1, len(prepared.requests))
        return [
            self._result(req, text, parts, hits[a:b], per_request_ms)
            for req, text, parts, (a, b) in zip(
                prepared.requests, prepared.texts, prepared.needs, prepared.spans, strict=True
            )
        ]

    def _fuse(self, retrieved: dict[str, tuple[np.ndarray, np.ndarray]], n_queries: int) -> list[QueryHits]:
        cfg, idx = self.config, self.indexes
        names = [n for n in cfg.retrievers if n in retrieved]
        weights = [cfg.weights_for(n) for n in names]
        out = []
        for q in range(n_queries):
            row = [(retrieved[n][0][q], retrieved[n][1][q]) for n in names]
            if cfg.fusion == "rrf":
                ids, scores = rrf(row, weights, cfg.rrf_k)
                scores = scores / rrf_ceiling(weights, cfg.rrf_k)
            else:
                ids, scores = weighted_scores(row, weights)
                scores = scores / sum(weights)
            inst = aggregate(
                cfg.aggregation,
                ids,
                scores,
                idx.owner,
                self._n_inst,
                k=cfg.agg_k,
                temperature=cfg.agg_temperature,
            )
            peaks = {
                n: float(s[q][i[q] >= 0].max()) if (i[q] >= 0).any() else 0.0
                for n, (s, i) in ((n, retrieved[n]) for n in names)
            }
            out.append(QueryHits(ids, scores, inst, peaks))
        return out

    # ------------------------------------------------------------------ ranking and evidence
    def _result(
        self, request: Request, text: str, needs: list[str], hits: list[QueryHits], latency_ms: float
    ) -> MatchResult:
        cfg = self.config
        whole, need_hits = hits[0], hits[1:]
        score = whole.institute_scores.copy()
        if need_hits:
            need_mean = np.mean([h.institute_scores for h in need_hits], axis=0)
            score = cfg.whole_weight * score + (1 - cfg.whole_weight) * need_mean
        features = {}
        if self.reranker is not None:
            from matcher.rerank import institute_features

            features = institute_features(
                score,
                whole,
                need_hits,
                self.indexes.owner,
                self._n_inst,
                kinds=self._kinds,
                prior=self.reranker.prior_vector(self.catalog.institute_ids),
            )
            score = self.reranker.score(features)
        order = np.lexsort((np.arange(self._n_inst), -score))
        confidence = float(score[order[0]]) if self._n_inst else 0.0
        abstained = confidence < cfg.abstain_threshold or not np.any(score > 0)

        singles = [int(i) for i in order[: max(cfg.top, cfg.joint_candidates)] if score[i] > 0]
        recs: list[tuple[float, tuple[int, ...], tuple[Cover, ...]]] = [
            (float(score[i]), (i,), ()) for i in singles
        ]
        if cfg.joint and need_hits and len(singles) >= 2:
            recs += self._teams(text, needs, hits, singles[: cfg.joint_candidates], score)
        recs.sort(key=lambda r: (-r[0], len(r[1])))
        labelled = [text, *needs]
        recommendations = []
        for rank, (value, members, covers) in enumerate(recs[: cfg.top], start=1):
            ids = tuple(self.catalog.institutes[m].id for m in members)
            recommendations.append(
                Recommendation(
                    rank=rank,
                    institutes=ids,
                    names=tuple(self.catalog.institutes[m].name_ko for m in members),
                    score=value,
                    kind="joint" if len(members) > 1 else "single",
                    evidence=tuple(e for m in members for e in self._evidence(m, hits, labelled)),
                    covers=covers,
                )
            )
        return MatchResult(
            request.id,
            text,
            tuple(needs),
            abstained,
            confidence,
            tuple(recommendations),
            latency_ms,
            features,
        )

    def _teams(
        self, text: str, needs: list[str], hits: list[QueryHits], candidates: list[int], score: np.ndarray
    ) -> list[tuple[float, tuple[int, ...], tuple[Cover, ...]]]:
        cfg = self.config
        rows = np.array(
            [h.institute_scores[candidates] for h in hits[1:]] + [hits[0].institute_scores[candidates]]
        )
        C = coverage_matrix(rows)
        w = np.full(len(rows), 1.0 / len(rows))
        labels = [*needs, text]
        best_single = max(float(w @ C[:, i]) for i in range(C.shape[1]))
        out = []
        for team in plan_teams(
            C, w, penalty=cfg.joint_penalty, margin=cfg.joint_margin, max_size=cfg.joint_max_size
        ):
            members = tuple(candidates[m] for m in team.members)
            covers = []
            for m in team.members:
                best_rows = [
                    j for j in range(len(needs)) if C[j, m] >= C[j, list(team.members)].max() and C[j, m] > 0
                ]
                covers.append(
                    Cover(
                        self.catalog.institutes[candidates[m]].id,
                        tuple(labels[j] for j in best_rows),
                        float(w[: len(needs)] @ C[: len(needs), m]),
                    )
                )
            # Teams rank by their coverage value, on the single-institute score scale: a team worth
            # `best single value + x` scores x above the top single recommendation (relatively).
            value = float(score[candidates[0]]) * (1.0 + team.value - best_single)
            out.append((value, members, tuple(covers)))
        return out

    def _evidence(self, institute: int, hits: list[QueryHits], labels: list[str]) -> list[Evidence]:
        """The institute's best records across the whole request and its needs, each with its need."""
        best: dict[int, tuple[float, int]] = {}
        owner = self.indexes.owner
        for q, h in enumerate(hits):
            mine = owner[h.ids] == institute
            for rid, s in zip(h.ids[mine], h.scores[mine], strict=True):
                if s > best.get(int(rid), (-1.0, 0))[0]:
                    best[int(rid)] = (float(s), q)
        top = sorted(best.items(), key=lambda kv: -kv[1][0])[: self.config.evidence_per_institute]
        out = []
        for rid, (s, q) in top:
            rec = self.indexes.records[rid]
            out.append(
                Evidence(rec.institute, rec.id, rec.kind.value, rec.title, rec.description, s, labels[q])
            )
        return out

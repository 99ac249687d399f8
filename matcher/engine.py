"""`Matcher`: a request in, ranked single and joint recommendations with evidence out.

Flow per batch of requests (each step one pure function elsewhere):
  split into needs (korean.split_needs) → search every retriever for the whole request and each need
  → fuse record hits (fusion) → institute scores per query (aggregate) → combine whole and needs
  → optional learned re-ranker (rerank) → joint teams over the top candidates (joint) → evidence.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from matcher.aggregate import aggregate
from matcher.catalog import load_catalog
from matcher.config import MatcherConfig
from matcher.fusion import rrf, rrf_ceiling, weighted_scores
from matcher.index_store import IndexSet, Progress, load_indexes
from matcher.joint import coverage_matrix, plan_teams
from matcher.korean import split_needs, tokenize_many
from matcher.result import Cover, Evidence, MatchResult, Recommendation
from matcher.schema import Request


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
        cfg = self.config
        texts = [r.full_text()[: cfg.max_text_chars] for r in requests]
        needs = [split_needs(t, max_needs=cfg.max_needs, min_chars=cfg.min_need_chars) for t in texts]
        needs = [n if len(n) >= 2 else [] for n in needs]
        queries: list[str] = []
        spans: list[tuple[int, int]] = []
        for text, parts in zip(texts, needs, strict=True):
            spans.append((len(queries), len(queries) + 1 + len(parts)))
            queries += [text, *parts]
        hits = self._search(queries)
        per_request_ms = (time.perf_counter() - start) * 1000 / max(1, len(requests))
        return [
            self._result(req, text, parts, hits[a:b], per_request_ms)
            for req, text, parts, (a, b) in zip(requests, texts, needs, spans, strict=True)
        ]

    # ------------------------------------------------------------------ retrieval
    def _search(self, queries: list[str]) -> list[QueryHits]:
        cfg, idx = self.config, self.indexes
        per_retriever: list[tuple[np.ndarray, np.ndarray]] = []
        for name in cfg.retrievers:
            if name in idx.dense:
                encoder, index = idx.dense[name]
                vectors = encoder.encode(queries, kind="query", batch_size=cfg.encode_batch_size)
                per_retriever.append(
                    index.search(
                        vectors, cfg.hits_per_need, ef_search=cfg.hnsw_ef_search, nprobe=cfg.ivf_nprobe
                    )
                )
            elif name == "bm25" and idx.bm25 is not None:
                per_retriever.append(idx.bm25.search_tokens(tokenize_many(queries), cfg.hits_per_need))
            elif name == "tfidf" and idx.tfidf is not None:
                per_retriever.append(idx.tfidf.search(queries, cfg.hits_per_need))
            else:
                raise RuntimeError(f"retriever {name!r} has no index loaded")
        weights = list(cfg.retriever_weights)
        out = []
        for q in range(len(queries)):
            row = [(s[q], i[q]) for s, i in per_retriever]
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
                name: float(s[q][i[q] >= 0].max()) if (i[q] >= 0).any() else 0.0
                for name, (s, i) in zip(cfg.retrievers, per_retriever, strict=True)
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

            features = institute_features(score, whole, need_hits, self.indexes.owner, self._n_inst)
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
            value = float(max(score[list(members)])) * (1.0 + team.gain)
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

"""Per-request metrics over a ranked list of institutes (pure functions, binary relevance).

A joint recommendation contributes its members in order to the ranked list
(`MatchResult.ranked_institutes`). Requests with empty gold are scored only on abstention.
`team_first` (single-institute requests only) is 1 when a team took rank 1 anyway: a padded answer
that hit@1 does not see (issue 16 keeps it at or below 15%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

RANKING_METRICS = ("hit@1", "hit@3", "hit@5", "recall@3", "recall@5", "mrr", "ndcg@5")
JOINT_METRICS = ("full_cover@1", "full_cover@3", "jaccard@1", "team_first")
MAIN_METRICS = ("hit@1", "hit@3", "hit@5", "mrr", "ndcg@5", "full_cover@3")


def hit_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """1 if any gold institute is among the first k."""
    return float(any(r in gold for r in ranked[:k]))


def recall_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Share of gold institutes among the first k."""
    return len(set(ranked[:k]) & set(gold)) / len(gold) if gold else 0.0


def reciprocal_rank(ranked: Sequence[str], gold: Sequence[str]) -> float:
    """1 / rank of the first gold institute (0 if none is ranked)."""
    for i, r in enumerate(ranked, start=1):
        if r in gold:
            return 1.0 / i
    return 0.0


def ndcg_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Normalised DCG with binary gains: sum 1/log2(i+1) over gold hits, divided by the ideal."""
    if not gold:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 1) for i, r in enumerate(ranked[:k], start=1) if r in gold)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(gold), k) + 1))
    return dcg / ideal


def full_cover_at(recommendations: Sequence[Sequence[str]], gold: Sequence[str], k: int) -> float:
    """1 if one recommendation among the first k contains every gold institute."""
    return float(any(set(gold) <= set(rec) for rec in recommendations[:k]))


def jaccard_first(recommendations: Sequence[Sequence[str]], gold: Sequence[str]) -> float:
    """Overlap of the first recommendation's institutes with the gold set."""
    if not recommendations:
        return 0.0
    first, g = set(recommendations[0]), set(gold)
    return len(first & g) / len(first | g)


def request_metrics(
    ranked: Sequence[str], recommendations: Sequence[Sequence[str]], gold: Sequence[str]
) -> dict[str, float]:
    """Every metric that applies to one request (ranking: gold; joint: 2+ gold; team_first: 1 gold)."""
    if not gold:
        return {}
    out = {
        "hit@1": hit_at(ranked, gold, 1),
        "hit@3": hit_at(ranked, gold, 3),
        "hit@5": hit_at(ranked, gold, 5),
        "recall@3": recall_at(ranked, gold, 3),
        "recall@5": recall_at(ranked, gold, 5),
        "mrr": reciprocal_rank(ranked, gold),
        "ndcg@5": ndcg_at(ranked, gold, 5),
    }
    if len(gold) == 1:
        out["team_first"] = float(bool(recommendations) and len(recommendations[0]) > 1)
    if len(gold) >= 2:
        out["full_cover@1"] = full_cover_at(recommendations, gold, 1)
        out["full_cover@3"] = full_cover_at(recommendations, gold, 3)
        out["jaccard@1"] = jaccard_first(recommendations, gold)
    return out


def abstention(abstained: Sequence[bool], empty_gold: Sequence[bool]) -> dict[str, float]:
    """Precision and recall of abstaining, where the right answer is 'no institute fits'."""
    tp = sum(a and e for a, e in zip(abstained, empty_gold, strict=True))
    n_abstained, n_empty = sum(abstained), sum(empty_gold)
    return {
        "abstain_precision": tp / n_abstained if n_abstained else 0.0,
        "abstain_recall": tp / n_empty if n_empty else 0.0,
        "abstain_rate": n_abstained / len(abstained) if abstained else 0.0,
    }

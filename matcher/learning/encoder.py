"""Fine-tuning the e5 encoder on past cases: (request, record of a gold institute) pairs.

Pairs are mined with the encoder being tuned: for each training request its gold institutes'
records most similar to it are positives, and the most similar records of OTHER institutes are
hard negatives. The loss is MultipleNegativesRankingLoss (InfoNCE with in-batch and hard
negatives); batches never hold two pairs of the same request or the same gold institute, so an
in-batch "negative" is never really a positive. Texts get the model's own prompts (`query: ` /
`passage: ` for E5) exactly as `SentenceTransformer.encode` adds them.

A plain PyTorch loop on CPU (bf16 autocast), not the Hugging Face Trainer: the Trainer needs the
`datasets` and `accelerate` packages, ~100 MB for one loop, and a time budget is one check per step.
Seeds are fixed (Python, NumPy, torch), so a run is repeatable on the same machine.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from matcher.atomic import write_text_atomic
from matcher.datasets import GoldRequest
from matcher.encoders.base import Encoder
from matcher.schema import Capability


@dataclass(frozen=True)
class Pair:
    """One training example: a request, a record of its gold institute, a record of another."""

    request_id: str
    anchor: str
    positive: str
    negative: str
    institute: str
    positive_id: str
    negative_id: str


@dataclass
class TrainParams:
    epochs: int = 1
    max_pairs: int = 2000
    positives_per_institute: int = 3
    batch_size: int = 16
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_seq_length: int = 256
    scale: float = 20.0
    freeze_embeddings: bool = True
    """Keep the 250k-token embedding matrix fixed: 3/4 of the weights, few rows seen in training,
    and its AdamW state alone would cost 0.8 GB and most of each step's time on CPU."""
    time_budget_s: float | None = None
    bf16: bool = True
    seed: int = 13


@dataclass
class TrainOutcome:
    steps: int
    steps_planned: int
    pairs_seen: int
    seconds: float
    stopped_by_budget: bool
    losses: list[float] = field(default_factory=list)


def mine_pairs(
    golds: Sequence[GoldRequest],
    records: Sequence[Capability],
    record_vectors: np.ndarray,
    encoder: Encoder,
    *,
    max_text_chars: int = 20000,
    positives_per_institute: int = 3,
    max_pairs: int = 2000,
    seed: int = 13,
) -> list[Pair]:
    """Positives and hard negatives by the current encoder's similarity (requests without gold skip).

    Pairs are taken round-robin (every request's best positive first, then the second best, ...),
    so `max_pairs` spreads over as many requests as possible.
    """
    golds = [g for g in golds if g.gold]
    if not golds:
        return []
    texts = [g.request.full_text()[:max_text_chars] for g in golds]
    queries = encoder.encode(texts, kind="query")
    sims = queries @ record_vectors.T
    owner = np.array([r.institute for r in records])
    record_texts = [r.text() for r in records]
    per_request: list[list[Pair]] = []
    for g, text, row in zip(golds, texts, sims, strict=True):
        order = np.argsort(-row, kind="stable")
        negatives = [int(i) for i in order if owner[i] not in g.gold]
        pairs: list[Pair] = []
        for rank in range(positives_per_institute):
            for inst in g.gold:
                mine = [int(i) for i in order if owner[i] == inst]
                if rank >= len(mine) or len(pairs) >= len(negatives):
                    continue
                pos, neg = mine[rank], negatives[len(pairs)]
                pairs.append(
                    Pair(
                        g.id,
                        text,
                        record_texts[pos],
                        record_texts[neg],
                        inst,
                        records[pos].id,
                        records[neg].id,
                    )
                )
        per_request.append(pairs)
    rng = random.Random(seed)
    rng.shuffle(per_request)
    out: list[Pair] = []
    depth = max((len(p) for p in per_request), default=0)
    for level in range(depth):
        for pairs in per_request:
            if level < len(pairs) and len(out) < max_pairs:
                out.append(pairs[level])
    return out


def make_batches(pairs: Sequence[Pair], batch_size: int, seed: int) -> list[list[Pair]]:
    """Shuffled batches in which no request and no gold institute appears twice."""
    rng = random.Random(seed)
    pending = list(pairs)
    rng.shuffle(pending)
    batches: list[list[Pair]] = []
    while pending:
        batch: list[Pair] = []
        requests: set[str] = set()
        institutes: set[str] = set()
        rest: list[Pair] = []
        for pair in pending:
            if (
                len(batch) < batch_size
                and pair.request_id not in requests
                and pair.institute not in institutes
            ):
                batch.append(pair)
                requests.add(pair.request_id)
                institutes.add(pair.institute)
            else:
                rest.append(pair)
        batches.append(batch)
        pending = rest
    return batches


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(
    model,
    pairs: Sequence[Pair],
    params: TrainParams,
    progress: Callable[[int, int], None] | None = None,
) -> TrainOutcome:
    """Fine-tune a SentenceTransformer in place; stops cleanly after the step that exceeds the budget."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import get_linear_schedule_with_warmup

    seed_everything(params.seed)
    model.to("cpu")
    model.max_seq_length = min(model.max_seq_length or params.max_seq_length, params.max_seq_length)
    prompts = getattr(model, "prompts", {}) or {}
    q_prompt, p_prompt = prompts.get("query") or None, prompts.get("passage") or None
    loss_fn = MultipleNegativesRankingLoss(model, scale=params.scale)
    epochs = [make_batches(pairs, params.batch_size, params.seed + e) for e in range(params.epochs)]
    planned = sum(len(b) for b in epochs)
    if params.freeze_embeddings:
        for name, weight in model.named_parameters():
            if "word_embeddings" in name:
                weight.requires_grad_(False)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if not any(k in n for k in ("bias", "LayerNorm"))]
    no_decay = [p for n, p in trainable if any(k in n for k in ("bias", "LayerNorm"))]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": params.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=params.learning_rate,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, int(params.warmup_ratio * planned), planned)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if params.bf16 else nullcontext()
    start = time.perf_counter()
    outcome = TrainOutcome(0, planned, 0, 0.0, False)
    model.train()
    for batches in epochs:
        for batch in batches:
            features = [
                model.preprocess([p.anchor for p in batch], prompt=q_prompt),
                model.preprocess([p.positive for p in batch], prompt=p_prompt),
                model.preprocess([p.negative for p in batch], prompt=p_prompt),
            ]
            with autocast:
                loss = loss_fn(features, None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in trainable], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            outcome.steps += 1
            outcome.pairs_seen += len(batch)
            outcome.losses.append(round(float(loss.detach()), 4))
            if progress:
                progress(outcome.steps, planned)
            elapsed = time.perf_counter() - start
            if params.time_budget_s is not None and elapsed >= params.time_budget_s:
                outcome.stopped_by_budget = outcome.steps < planned
                break
        if outcome.stopped_by_budget:
            break
    model.eval()
    outcome.seconds = round(time.perf_counter() - start, 1)
    return outcome


def card_data(
    *,
    base_model: str,
    base_id: str,
    train_path: str,
    n_requests: int,
    pairs: Sequence[Pair],
    params: TrainParams,
    outcome: TrainOutcome,
    prompts: dict,
    dev: dict | None,
) -> dict:
    from matcher import __version__

    losses = outcome.losses
    return {
        "kind": "matcher fine-tuned e5",
        "base_model": base_model,
        "base_encoder_id": base_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "matcher_version": __version__,
        "data": {
            "train": train_path,
            "requests_with_gold": n_requests,
            "pairs": len(pairs),
            "institutes": len({p.institute for p in pairs}),
            "positives": "gold institute's records most similar to the request (base encoder)",
            "hard_negatives": "most similar records of other institutes (base encoder)",
        },
        "parameters": {**asdict(params), "loss": "MultipleNegativesRankingLoss", "prompts": prompts},
        "seed": params.seed,
        "training": {
            "steps": outcome.steps,
            "steps_planned": outcome.steps_planned,
            "pairs_seen": outcome.pairs_seen,
            "seconds": outcome.seconds,
            "stopped_by_time_budget": outcome.stopped_by_budget,
            "loss_first": losses[0] if losses else None,
            "loss_last_10_mean": round(float(np.mean(losses[-10:])), 4) if losses else None,
        },
        "dev": dev,
    }


def card_markdown(data: dict) -> str:
    """The README.md of the model directory: what it was trained on, how, and what it measured."""
    t, d, p = data["training"], data["data"], data["parameters"]
    lines = [
        f"# Fine-tuned e5 for matcher (from {data['base_model']})",
        "",
        'Sentence-transformers model for `e5_model = "<this directory>"` in a matcher config.',
        f"Created {data['created']} by matcher {data['matcher_version']}.",
        "",
        "## Data",
        f"- training requests: `{d['train']}` ({d['requests_with_gold']} with gold institutes)",
        f"- pairs: {d['pairs']} over {d['institutes']} institutes; positives: {d['positives']};"
        f" hard negatives: {d['hard_negatives']}",
        "- the dev set was never used for training",
        "",
        "## Training",
        f"- loss: MultipleNegativesRankingLoss (scale {p['scale']}), prompts {json.dumps(p['prompts'])}",
        f"- epochs {p['epochs']}, batch {p['batch_size']}, lr {p['learning_rate']}, warmup"
        f" {p['warmup_ratio']}, max_seq_length {p['max_seq_length']}, bf16 autocast {p['bf16']},"
        f" seed {data['seed']}",
        f"- steps {t['steps']}/{t['steps_planned']} in {t['seconds']} s"
        + (" (stopped by the time budget)" if t["stopped_by_time_budget"] else ""),
        f"- loss {t['loss_first']} → {t['loss_last_10_mean']} (mean of the last 10 steps)",
    ]
    dev = data.get("dev")
    if dev:
        lines += [
            "",
            f"## Dev ({dev['dataset']}, e5 alone, n={dev['n']})",
            "| metric | before | after |",
            "| --- | --- | --- |",
        ]
        for name, before in dev["before"].items():
            lines.append(f"| {name} | {before:.3f} | {dev['after'][name]:.3f} |")
    return "\n".join(lines) + "\n"


def write_card(path: Path, data: dict) -> None:
    write_text_atomic(path / "model_card_data.json", json.dumps(data, ensure_ascii=False, indent=1))
    write_text_atomic(path / "README.md", card_markdown(data))


def evaluate_e5(config, model: str, dataset: str | Path, index_dir: str | Path) -> dict:
    """Dev metrics of the e5 retriever alone with `model` (what `matcher evaluate` gives for it).

    The record embeddings go through the config's embedding cache, so they are reused later.
    """
    from matcher.datasets import load_labeled
    from matcher.engine import Matcher
    from matcher.evaluation.runner import run, summarize

    cfg = config.replace(
        name="e5-dev",
        retrievers=("e5",),
        retriever_weights=(1.0,),
        e5_model=str(model),
        index_dir=str(index_dir),
        reranker=None,
        joint=False,
        top=max(config.top, 10),
    )
    matcher = Matcher.from_config(cfg)
    golds = load_labeled(dataset, matcher.catalog, strict=False)
    rows, _ = run(matcher, golds, one_at_a_time=False)
    summary = summarize(rows, seed=config.seed)
    keys = ("hit@1", "hit@3", "hit@5", "mrr", "ndcg@5")
    return {"n": summary["n_ranked"], **{k: round(summary["metrics"][k], 4) for k in keys}}


def carry_cache(cache_root: Path, old_id: str, new_id: str, dim: int) -> None:
    """Move cached record embeddings to the id a card edit gave the same weights (no re-encoding)."""
    from matcher.encoders.cache import EmbeddingCache

    old, new = EmbeddingCache(cache_root, old_id, dim).dir, EmbeddingCache(cache_root, new_id, dim).dir
    if old.is_dir() and old != new and not new.exists():
        old.rename(new)

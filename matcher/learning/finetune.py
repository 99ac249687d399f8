"""The whole fine-tuning job behind `matcher train encoder`: mine pairs, train, save with a card.

The steps live in `matcher.learning.encoder`; this module runs them in order for a config, writes the
model atomically (a temporary sibling, then a rename) and measures dev before and after when asked.
The CLI only parses options, shows progress and prints the summary.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from matcher.catalog_cache import catalog_of
from matcher.config import MatcherConfig
from matcher.datasets import load_labeled
from matcher.encoders.cpu import native_bf16
from matcher.encoders.factory import encoder_id
from matcher.learning import encoder as ft
from matcher.problems import InputError, Problem
from matcher.retrieval.dense import dense_batch_size, dense_encoder, encode_records

Stage = Callable[[str], tuple[Callable[[int, int], None], Callable[[], None]]]
"""Opens a progress display for a stage by name: returns (update(done, total), close())."""


def _quiet(stage: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    return (lambda done, total: None), (lambda: None)


def fine_tune_encoder(
    config: MatcherConfig,
    train: Path,
    out: Path,
    *,
    epochs: int = 1,
    max_pairs: int = 2000,
    batch_size: int = 16,
    time_budget_s: float | None = None,
    dev: Path | None = None,
    stage: Stage = _quiet,
) -> dict:
    """Fine-tune the config's e5 model on TRAIN and save it to OUT with its card.

    Returns {"out", "pairs", "steps", "steps_planned", "seconds", "stopped_by_time_budget", "dev"}.

    Raises:
        InputError: OUT is the base model, or TRAIN has no request with a gold institute.
        ModelNotFound: the config's e5 model is not installed.
    """
    base = dense_encoder("e5", config)
    base_path = Path(base.path)  # type: ignore[attr-defined]
    if out.resolve() == base_path.resolve():
        raise InputError([Problem(str(out), "--out이 원본 모델과 같습니다 (choose another directory)")])
    catalog = catalog_of(config)
    golds = load_labeled(train, catalog, strict=False)
    params = ft.TrainParams(
        epochs=epochs,
        max_pairs=max_pairs,
        batch_size=batch_size,
        time_budget_s=time_budget_s,
        bf16=native_bf16(),  # training runs in torch: bf16 only where the CPU computes in it
        seed=config.seed,
    )
    scratch = Path(tempfile.mkdtemp(prefix="matcher-ft-"))
    try:
        before = None
        if dev is not None:
            stage("dev 평가 (학습 전)")[1]()
            before = ft.evaluate_e5(config, str(base_path), dev, scratch / "before")
        update, close = stage("쌍 추출 (pair mining)")
        try:
            records = list(catalog.capabilities)
            cache = Path(config.model_dir) / "cache"
            progress = lambda s, d, t: update(d, t)  # noqa: E731
            vectors, _ = encode_records(base, records, cache, dense_batch_size("e5", config), progress)
            pairs = ft.mine_pairs(
                golds,
                records,
                vectors,
                base,
                max_text_chars=config.max_text_chars,
                positives_per_institute=params.positives_per_institute,
                max_pairs=max_pairs,
                seed=config.seed,
            )
        finally:
            close()
        if not pairs:
            raise InputError([Problem(str(train), "정답 기관이 있는 요청이 없습니다 (no pairs to train on)")])
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(base_path), device="cpu", local_files_only=True)
        update, close = stage(f"학습 ({len(pairs)} pairs)")
        try:
            outcome = ft.train(model, pairs, params, progress=update)
        finally:
            close()
        tmp_out = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp_out, ignore_errors=True)
        model.save(str(tmp_out), create_model_card=False)
        shutil.rmtree(out, ignore_errors=True)
        tmp_out.rename(out)
        card = ft.card_data(
            base_model=str(base_path),
            base_id=base.id,
            train_path=str(train),
            n_requests=sum(1 for g in golds if g.gold),
            pairs=pairs,
            params=params,
            outcome=outcome,
            prompts={k: (getattr(model, "prompts", {}) or {}).get(k) for k in ("query", "passage")},
            dev=None,
        )
        ft.write_card(out, card)
        if dev is not None:
            assert before is not None
            stage("dev 평가 (학습 후)")[1]()
            first_id = encoder_id(out)
            after = ft.evaluate_e5(config, str(out.resolve()), dev, scratch / "after")
            n = before.pop("n")
            after.pop("n")
            card["dev"] = {"dataset": str(dev), "n": n, "retriever": "e5", "before": before, "after": after}
            ft.write_card(out, card)
            ft.carry_cache(Path(config.model_dir) / "cache", first_id, encoder_id(out), base.dim)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "out": str(out),
        "pairs": len(pairs),
        "steps": outcome.steps,
        "steps_planned": outcome.steps_planned,
        "seconds": outcome.seconds,
        "stopped_by_time_budget": outcome.stopped_by_budget,
        "dev": card["dev"],
    }

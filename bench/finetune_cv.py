"""Does fine-tuning e5 on real cases help? Grouped cross-validation on real-train, e5 alone (issue 16).

    python bench/finetune_cv.py [--folds 3] [--synthetic 60] [--epochs 2] [--out runs/finetune_cv]
    python bench/finetune_cv.py --smoke     # fixture catalog, one step per fold, seconds (CI)
    python bench/finetune_cv.py --final models/e5-small-ft   # the same recipe on all of real-train


For each fold (GroupKFold, groups = company, else request id, shuffled with the seed): fine-tune the
config's e5 (`matcher train encoder`'s job, `learning.finetune.fine_tune_encoder`) on real-train minus
the fold, plus `--synthetic` requests sampled (seeded) from synthetic train, then score the held-out
fold with the base and the fine-tuned model under the SAME runtime (`--runtime`, default torch-fp32:
the fine-tuned folder has no ONNX export), e5 alone (`learning.encoder.evaluate_e5`: the `dense`
ranking). No dev set is read. Each fold's model is deleted after scoring unless `--keep`.
Prints one row per fold (MRR, hit@1, hit@3: base → fine-tuned) and the mean gain; the report is saved
as JSON under --out.

`--final OUT` trains once on all of real-train plus the same synthetic sample, with the same options,
saves the model and its card to OUT and exports it to ONNX (float32, int8), so that it can serve under
the default runtime; no fold is scored.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matcher.config import MatcherConfig, load_config  # noqa: E402
from matcher.datasets import iter_jsonl  # noqa: E402

REAL_TRAIN = ROOT / "data" / "requests" / "real-train.jsonl"
SYNTHETIC_TRAIN = ROOT / "data" / "requests" / "train.jsonl"
FIXTURES = ROOT / "tests" / "fixtures"
METRICS = ("mrr", "hit@1", "hit@3")


def read_rows(path: Path) -> list[tuple[dict, str]]:
    """(parsed, raw line) of every request, so fold files keep each line exactly as shipped."""
    return [(json.loads(raw), raw.rstrip("\n")) for _, raw in iter_jsonl(path)]


def grouped_folds(rows: list[dict], folds: int, seed: int) -> list[list[int]]:
    """Held-out row indices per fold: the same company (else the same request id) never sits on both
    sides; requests without gold institutes are left out (they give no pairs and no rank)."""
    from sklearn.model_selection import GroupKFold

    keep = [i for i, r in enumerate(rows) if r.get("institutes")]
    groups = [str(rows[i].get("company") or rows[i]["id"]) for i in keep]
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [sorted(keep[j] for j in test) for _, test in splitter.split(keep, groups=groups)]


def synthetic_sample(rows: list[tuple[dict, str]], n: int, seed: int) -> list[str]:
    """`n` synthetic training requests with gold institutes, drawn with the seed (same every run)."""
    labeled = [raw for row, raw in rows if row.get("institutes")]
    return random.Random(seed).sample(labeled, min(n, len(labeled)))


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tune(config: MatcherConfig, train: Path, out: Path, args, dev: Path | None = None) -> dict:
    """`matcher train encoder`'s job with the run's options (one recipe for the folds and the final)."""
    from matcher.learning.finetune import fine_tune_encoder

    return fine_tune_encoder(
        config,
        train,
        out,
        epochs=args.epochs,
        max_pairs=args.max_pairs,
        batch_size=args.batch_size,
        time_budget_s=args.time_budget,
        dev=dev,
    )


def run_fold(
    config: MatcherConfig,
    fold: int,
    held_out: list[int],
    real: list[tuple[dict, str]],
    synthetic: list[str],
    work: Path,
    args: argparse.Namespace,
) -> dict:
    """Fine-tune on everything but the fold, score the fold before and after; returns the fold's row."""
    out = set(held_out)
    train = write_lines(
        work / f"train-{fold}.jsonl", [raw for i, (_, raw) in enumerate(real) if i not in out]
    )
    if synthetic:
        with open(train, "a", encoding="utf-8") as fh:
            fh.write("\n".join(synthetic) + "\n")
    test = write_lines(work / f"fold-{fold}.jsonl", [real[i][1] for i in held_out])
    model = work / f"e5-ft-{fold}"
    start = time.perf_counter()
    summary = tune(config, train, model, args, dev=test)
    wall = round(time.perf_counter() - start, 1)
    if not args.keep:
        shutil.rmtree(model, ignore_errors=True)
    dev = summary["dev"]
    return {
        "fold": fold,
        "n": dev["n"],
        "held_out": [real[i][0]["id"] for i in held_out],
        "pairs": summary["pairs"],
        "steps": summary["steps"],
        "train_s": summary["seconds"],
        "wall_s": wall,
        "base": {k: dev["before"][k] for k in METRICS},
        "finetuned": {k: dev["after"][k] for k in METRICS},
    }


def final(
    config: MatcherConfig, real: list[tuple[dict, str]], synthetic: list[str], out: Path, work: Path, args
) -> dict:
    """The CV recipe on all of real-train (+ the synthetic sample): the model to ship if CV supports it."""
    from matcher.encoders.onnx_export import export_onnx

    train = write_lines(work / "train-all.jsonl", [raw for _, raw in real] + synthetic)
    summary = tune(config, train, out, args)
    export_onnx(out, force=True)
    return summary


def summarize(rows: list[dict]) -> dict:
    """Mean of each metric and of its gain over folds (each fold weighted by its requests), and how
    many folds gained: a gain that only one fold shows is not a gain."""
    n = np.array([r["n"] for r in rows], float)
    out: dict = {}
    for k in METRICS:
        base = np.array([r["base"][k] for r in rows])
        tuned = np.array([r["finetuned"][k] for r in rows])
        out[k] = {
            "base": round(float(np.average(base, weights=n)), 4),
            "finetuned": round(float(np.average(tuned, weights=n)), 4),
            "gain": round(float(np.average(tuned - base, weights=n)), 4),
            "folds_gained": int(np.sum(tuned > base)),
        }
    return out


def table(rows: list[dict], mean: dict) -> str:
    head = "fold   n  pairs  steps  train_s " + "".join(f"{k:>22}" for k in METRICS)
    lines = [head]
    for r in rows:
        cells = "".join(f"{r['base'][k]:>10.3f} → {r['finetuned'][k]:<9.3f}" for k in METRICS)
        lines.append(f"{r['fold']:>4} {r['n']:>3} {r['pairs']:>6} {r['steps']:>6} {r['train_s']:>8} {cells}")
    cells = "".join(f"{mean[k]['base']:>10.3f} → {mean[k]['finetuned']:<9.3f}" for k in METRICS)
    lines.append(f"mean {sum(r['n'] for r in rows):>3} {'':>6} {'':>6} {'':>8} {cells}")
    lines.append(
        "gain "
        + ", ".join(
            f"{k} {mean[k]['gain']:+.3f} ({mean[k]['folds_gained']}/{len(rows)} folds)" for k in METRICS
        )
    )
    return "\n".join(lines)


def smoke_config(tmp: Path) -> MatcherConfig:
    """The fixture catalog with the real e5 (converted into `tmp` when the repo has none installed)."""
    from matcher.encoders.registry import ensure_default_model

    installed = ROOT / "models" / "e5-small"
    e5 = installed if (installed / "modules.json").is_file() else ensure_default_model(tmp / "models")
    return MatcherConfig(
        name="finetune-cv-smoke",
        catalog_dir=str(FIXTURES / "catalog"),
        index_dir=str(tmp / "index"),
        model_dir=str(tmp / "models"),
        retrievers=("e5",),
        retriever_weights=(1.0,),
        e5_model=str(e5.resolve()),
        e5_runtime="torch-fp32",
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="dense", help="Preset or TOML (its ranking knobs; e5 alone).")
    parser.add_argument("--runtime", default="torch-fp32", help="e5 runtime for base AND fine-tuned.")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--synthetic", type=int, default=60, help="Synthetic train requests added per fold.")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-pairs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--time-budget", type=float, default=600.0, help="Seconds of training per fold.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a shared 2-core machine: 1).")
    parser.add_argument("--seed", type=int, default=None, help="Default: the config's seed.")
    parser.add_argument("--name", default=None, help="Report name under --out (default from the options).")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "finetune_cv")
    parser.add_argument("--keep", action="store_true", help="Keep each fold's fine-tuned model.")
    parser.add_argument("--final", type=Path, default=None, help="Train on all of real-train, save here.")
    parser.add_argument("--smoke", action="store_true", help="Fixture catalog, 2 folds, 1 step each (CI).")
    args = parser.parse_args(argv)

    from matcher.threads import torch_threads

    tmp = Path(tempfile.mkdtemp(prefix="finetune-cv-"))
    try:
        if args.smoke:
            config = smoke_config(tmp)
            real_path, args.folds, args.synthetic = FIXTURES / "requests.jsonl", 2, 0
            args.max_pairs, args.batch_size, args.time_budget, args.epochs = 8, 4, 0.01, 1
            args.out = tmp / "out"
        else:
            config = load_config(args.config, e5_runtime=args.runtime).replace(reranker=None)
            real_path = REAL_TRAIN
        seed = config.seed if args.seed is None else args.seed
        real = read_rows(real_path)
        folds = grouped_folds([r for r, _ in real], args.folds, seed)
        synthetic = (
            synthetic_sample(read_rows(SYNTHETIC_TRAIN), args.synthetic, seed) if args.synthetic else []
        )
        work = tmp / "work"
        work.mkdir()
        if args.final is not None:
            with torch_threads(args.threads):
                summary = final(config, real, synthetic, args.final, work, args)
            print(json.dumps(summary, ensure_ascii=False))
            if args.smoke:
                assert (args.final / "onnx" / "model-int8.onnx").is_file() and summary["steps"] == 1
                print("smoke ok")
            return summary
        rows = []
        with torch_threads(args.threads):
            for fold, held_out in enumerate(folds):
                rows.append(run_fold(config, fold, held_out, real, synthetic, work, args))
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "held_out"}), flush=True)
        mean = summarize(rows)
        print(table(rows, mean))
        name = args.name or f"syn{args.synthetic}-ep{args.epochs}-f{args.folds}"
        report = {
            "config": config.name,
            "runtime": config.e5_runtime,
            "seed": seed,
            "options": {k: str(v) for k, v in vars(args).items()},
            "folds": rows,
            "mean": mean,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{name}.json").write_text(
            json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        if args.smoke:
            ids = [i for r in rows for i in r["held_out"]]
            assert len(ids) == len(set(ids)) == sum(r["n"] for r in rows), "folds overlap or lose requests"
            assert all(0 <= r[s][k] <= 1 for r in rows for s in ("base", "finetuned") for k in METRICS)
            print("smoke ok")
        return report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""`MatcherConfig`: every tunable knob in one frozen object, loadable from and savable to TOML.

Defaults were chosen on the training set (cross-validated by `matcher tune`), never on dev; the
reasoning is in docs/ranking.md. Named presets (`hybrid`, `dense`, `bm25`, `tfidf`, ...) live in
`matcher/configs/*.toml` and are the evaluation baselines.
"""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from matcher.atomic import write_text_atomic
from matcher.config_source import DEFAULT_MODEL_DIR, PRESETS, config_text
from matcher.problems import InputError, Problem, problems_from_validation

Retriever = Literal["e5", "use", "bm25", "tfidf", "hashing"]
"""Retriever names: dense `e5`, `use`, `hashing` (tests only); lexical `bm25`, `tfidf`."""


class MatcherConfig(BaseModel):
    """All knobs of the matcher. Frozen: derive variants with `replace(**changes)`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "hybrid"
    catalog_dir: str = "data/institutes"
    index_dir: str = "models/index"
    model_dir: str = DEFAULT_MODEL_DIR

    # Retrieval: which retrievers, how many capability hits each returns per need.
    retrievers: tuple[Retriever, ...] = ("e5", "use", "bm25")
    retriever_weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    e5_model: str = "e5-small"
    """Name of a converted model under `model_dir`, or a path to any sentence-transformers model."""
    e5_runtime: Literal["auto", "torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8"] = "auto"
    """How e5 runs. "auto": the runtime and precision `matcher model install` measured fastest on this
    machine within cosine 0.99 of float32 (`<model>/runtime.json`; docs/speed.md)."""
    hits_per_need: int = Field(default=200, ge=1)
    fusion: Literal["rrf", "weighted"] = "rrf"
    rrf_k: float = Field(default=10.0, gt=0)

    # Needs: the request split into clauses, each searched on its own as well as the whole text.
    max_needs: int = Field(default=4, ge=0)
    min_need_chars: int = Field(default=12, ge=1)
    fold_company_intro: bool = False
    """A sentence that only introduces the company joins the need after it (`korean.split_needs`);
    measured on real-train and not adopted (docs/ranking.md)."""
    whole_weight: float = Field(default=0.4, ge=0, le=1)
    """Weight of the whole request against the mean of its needs in the institute score."""

    # Aggregation of record scores into institute scores.
    aggregation: Literal["max", "topk_mean", "softmax_sum"] = "topk_mean"
    agg_k: int = Field(default=5, ge=1)
    agg_temperature: float = Field(default=0.1, gt=0)

    # Output.
    top: int = Field(default=5, ge=1)
    evidence_per_institute: int = Field(default=3, ge=1)
    max_text_chars: int = Field(default=20000, ge=100)

    # Abstention: below this calibrated confidence the matcher says a human must look.
    abstain_threshold: float = 0.0

    # Joint (융복합) planning.
    joint: bool = True
    joint_candidates: int = Field(default=4, ge=2)
    joint_max_size: int = Field(default=3, ge=2, le=3)
    joint_penalty: float = Field(default=0.1, ge=0)
    joint_margin: float = Field(default=0.05, ge=0)
    joint_first_rule: bool = True
    """A team takes rank 1 only if each member leads the team on a need of its own by `joint_first_gap`
    (`joint.covers_distinct_needs`); otherwise it ranks right after the best single institute.
    False: the behaviour before issue 16 (a team first whenever its coverage value is higher)."""
    joint_skip_intro: bool = True
    """A need that only introduces the company ("…를 만드는 회사입니다.", `korean.is_company_intro`) is
    not a need a team member can cover: without this, a member "covered" nothing but that sentence in
    34 of the 74 teams in real-train's top 3 (docs/ranking.md)."""
    joint_first_gap: float = Field(default=0.0, ge=0, le=1)
    joint_first_ratio: float = Field(default=0.0, ge=0, le=1)
    """…and only if each member scores at least this share of the best single institute's score
    (with the re-ranker, scores are probabilities: a second member the model doubts cannot lead)."""

    # Dense index.
    index_type: Literal["flat", "hnsw", "ivf", "auto"] = "auto"
    hnsw_m: int = 32
    hnsw_ef_search: int = 512
    ivf_nprobe: int = 128

    # Learned re-ranker (a JSON file written by `matcher train reranker`), optional.
    reranker: str | None = None
    encode_batch_size: int = Field(default=0, ge=0)
    """Texts per encoder call; 0: e5's size measured on this machine (`matcher model install`), else 32."""
    prefetch_queries: bool = True
    """A one-shot `matcher match` encodes the request in one forked worker per retriever while it
    loads the indexes (`matcher.prefetch`); false: everything in one process, one after the other."""
    seed: int = 13

    def replace(self, **changes: Any) -> MatcherConfig:
        """A copy with some knobs changed, validated."""
        return MatcherConfig.model_validate({**self.model_dump(), **changes})

    def weights_for(self, retriever: str) -> float:
        return self.retriever_weights[self.retrievers.index(retriever)]

    def to_toml(self) -> str:
        """Serialise as flat TOML (every value is a scalar or a list of scalars)."""
        lines = [f"# matcher config '{self.name}'"]
        for key, value in self.model_dump().items():
            if value is None:
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, self.to_toml())


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


REMOVED_KNOBS = ("search_threads",)
"""Knobs older saved configs may carry that no code read; dropped on load."""


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """`key=value` strings (values in TOML syntax, bare words as strings) into a dict of knob changes.

    Raises:
        InputError: a pair without `=`.
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InputError([Problem("--set", f"expected key=value, got {pair!r}")])
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw.strip()
    return out


def load_config(source: str | Path | None = None, **overrides: Any) -> MatcherConfig:
    """Load a config from a TOML file path or a preset name (default: `hybrid`).

    Raises:
        InputError: the file is missing, is not TOML, or has unknown or invalid keys.
    """
    found = config_text(source)
    if found is None:
        name = str(source)
        raise InputError([Problem(name, f"config file not found (or use a preset: {', '.join(PRESETS)})")])
    name, text = found
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError([Problem(name, f"invalid TOML: {exc}")]) from None
    for key in REMOVED_KNOBS:  # configs saved by older versions still load
        data.pop(key, None)
    if name in PRESETS and not Path(name).exists() and isinstance(data.get("reranker"), str):
        # A preset's model file ships beside it in the package (matcher/configs/), wherever we run from.
        data["reranker"] = str(Path(str(resources.files("matcher.configs"))) / data["reranker"])
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return MatcherConfig.model_validate(data)
    except ValidationError as exc:
        raise InputError(problems_from_validation(exc, file=name)) from None

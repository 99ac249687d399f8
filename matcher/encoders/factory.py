"""One e5 encoder of a model folder under one runtime, and the id that runtime gives it.

Its own module so that the registry (which picks the runtime) and the calibration (which times every
runtime) both build encoders the same way without importing each other.
"""

from __future__ import annotations

from pathlib import Path

from matcher.encoders.base import Encoder

REFERENCE = "torch-fp32"


def encoder_id(path: Path, runtime: str = REFERENCE) -> str:
    """The reference keeps the plain id; every other runtime/precision gets its own, so the embedding
    cache and index manifest never mix vectors of one with another."""
    from matcher.encoders.st import model_fingerprint

    base = f"st:{path.name}@{model_fingerprint(path)}"
    return base if runtime == REFERENCE else f"{base}+{runtime}"


def make_encoder(path: str | Path, runtime: str) -> Encoder:
    """A fresh e5 encoder of a model folder under one runtime (`encoders.runtime.RUNTIMES`)."""
    path = Path(path)
    if runtime.startswith("onnx-"):
        from matcher.encoders.ort import OnnxEncoder

        return OnnxEncoder(path, runtime[5:], encoder_id=encoder_id(path, runtime))
    from matcher.encoders.st import SentenceTransformerEncoder

    return SentenceTransformerEncoder(
        path, autocast_bf16=runtime == "torch-bf16", encoder_id=encoder_id(path, runtime)
    )

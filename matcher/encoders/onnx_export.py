"""Export a local sentence-transformers BERT model to ONNX (float32) and an int8 copy, on this machine.

Why: ONNX Runtime serves the same weights without importing torch (torch + sentence-transformers cost
3.5-7 s of start-up) and runs int8 matrix products on CPUs that have no bf16 arithmetic. The export
needs torch once, at install time; serving needs only `onnxruntime` and `tokenizers`.

The graph outputs the token states (`last_hidden_state`); pooling happens in numpy (`encoders.ort`),
so a caller can also pool over a span of tokens. int8 is dynamic quantisation with one scale per
output channel, of MatMul and the embedding Gather: per-tensor scales lost too much (cosine 0.977 to
float32 on Korean catalog texts, below the 0.99 gate), per-channel kept 0.994 (docs/speed.md).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

ONNX_DIR = "onnx"
FILES = {"fp32": "model-fp32.onnx", "int8": "model-int8.onnx"}


def onnx_path(model_path: str | Path, precision: str) -> Path:
    """Where the export of `precision` ("fp32" or "int8") lives beside a model."""
    return Path(model_path) / ONNX_DIR / FILES[precision]


def export_onnx(model_path: str | Path, *, force: bool = False) -> dict[str, Path]:
    """Write `onnx/model-fp32.onnx` and `onnx/model-int8.onnx` beside the model (tens of seconds).

    Idempotent: existing files are kept unless `force`. Files are written under a temporary name
    and renamed, so an interrupted export never leaves a half file that a later run would trust.
    """
    model_path = Path(model_path)
    out = {p: onnx_path(model_path, p) for p in FILES}
    out["fp32"].parent.mkdir(parents=True, exist_ok=True)
    if force or not out["fp32"].is_file():
        _export_fp32(model_path, out["fp32"])
    if force or not out["int8"].is_file():
        _quantize_int8(out["fp32"], out["int8"])
    return out


def _export_fp32(model_path: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_path), local_files_only=True).eval()

    class TokenStates(torch.nn.Module):
        """The encoder's last hidden state only: pooling stays outside the graph."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.int64)
    dynamic = {0: "batch", 1: "tokens"}
    tmp = target.with_suffix(".tmp")
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for every input here
        torch.onnx.export(
            TokenStates(model),
            (ids, torch.ones_like(ids)),
            str(tmp),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "last_hidden_state": dynamic},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter needs no onnxscript and handles this BERT as is
        )
    os.replace(tmp, target)


def _quantize_int8(source: Path, target: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_suffix(".tmp")
    logging.getLogger().setLevel(logging.ERROR)  # the quantiser warns about optional pre-processing
    quantize_dynamic(
        str(source),
        str(tmp),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Gather"],
    )
    os.replace(tmp, target)

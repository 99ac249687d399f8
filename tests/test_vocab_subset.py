"""e5's sliced vocabulary: the same tokens as the full tokenizer, the full one wherever a text needs it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from matcher.encoders import vocab_subset as vs
from tests.conftest import ROOT

INSTALLED = ROOT / "models" / "e5-small"


def _toy_tokenizer(folder: Path) -> Path:
    """A small Unigram tokenizer with Korean, Latin, Chinese and accented pieces, specials first."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors

    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁금형", "금", "형", "▁mold", "m", "o", "l", "d",
              "▁模具", "模", "具", "▁é", "é", "▁마모", "마", "모", "<mask>"]  # fmt: skip
    tok = Tokenizer(models.Unigram([(p, -float(i)) for i, p in enumerate(pieces)], unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.add_special_tokens([AddedToken(p, special=True) for p in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")])
    from tokenizers import normalizers

    tok.normalizer = normalizers.NFKC()
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / vs.SOURCE))
    return folder


def test_the_slice_keeps_order_and_specials_and_maps_ids_back(tmp_path):
    folder = _toy_tokenizer(tmp_path / "toy")
    sliced, ids = vs.subset_of(json.loads((folder / vs.SOURCE).read_text(encoding="utf-8")))
    kept = [p for p, _ in sliced["model"]["vocab"]]
    assert "▁模具" not in kept and "é" not in kept and "▁금형" in kept and "<mask>" in kept
    assert list(ids[:4]) == [0, 1, 2, 3] and list(ids) == sorted(ids)
    assert {t["content"]: t["id"] for t in sliced["added_tokens"]}["<mask>"] == len(kept) - 1


def test_same_tokens_as_the_full_tokenizer_and_the_full_one_for_other_scripts(tmp_path):
    from tokenizers import Tokenizer

    folder = _toy_tokenizer(tmp_path / "toy")
    full = Tokenizer.from_file(str(folder / vs.SOURCE))
    tok = vs.SubsetTokenizer(folder, max_tokens=512)
    assert (folder / vs.SUBSET).is_file() and tok._subset is not None
    texts = ["금형 마모", "mold 금형", "模具 마모", "é mold", "ｍｏｌｄ"]  # full width: NFKC makes it ASCII
    got = tok.encode_batch(texts)
    for text, tokens in zip(texts, got, strict=True):
        want = full.encode(text)
        assert (tokens.ids, tokens.offsets) == (want.ids, want.offsets), text
    assert tok._full is not None  # 模具 and é needed the full vocabulary
    only_korean = vs.SubsetTokenizer(folder, max_tokens=512)
    only_korean.encode_batch(["금형 마모"])
    assert only_korean._full is None  # …and a Korean text never loads it


def test_a_stale_or_unwritable_slice_falls_back_to_the_full_tokenizer(tmp_path):
    folder = _toy_tokenizer(tmp_path / "toy")
    vs.SubsetTokenizer(folder, max_tokens=512)
    stamp = vs._stamp(folder)
    (folder / vs.SOURCE).write_text((folder / vs.SOURCE).read_text(encoding="utf-8") + " ", encoding="utf-8")
    assert vs._stamp(folder) != stamp and vs._load_ids(folder) is None
    again = vs.SubsetTokenizer(folder, max_tokens=512)  # rebuilt for the edited source
    assert again._subset is not None and vs._load_ids(folder) is not None
    (folder / vs.SUBSET).write_text('{"model": ', encoding="utf-8")  # half written
    assert vs.SubsetTokenizer(folder, max_tokens=512).encode("금형 마모").ids[0] == 0
    (folder / vs.IDS).write_bytes(b"damaged")
    folder.chmod(0o500)
    try:
        fallback = vs.SubsetTokenizer(folder, max_tokens=512)
        if fallback._subset is None:  # root may still write: then it simply rebuilt
            assert fallback.encode("금형 마모").ids[0] == 0
    finally:
        folder.chmod(0o700)


def _shipped_texts() -> list[str]:
    """What e5 encodes from the shipped data: every catalog record's text, every request and its needs."""
    from matcher.catalog import load_catalog
    from matcher.korean import split_needs

    texts = [c.text() for c in load_catalog(ROOT / "data" / "institutes").capabilities]
    for path in sorted((ROOT / "data" / "requests").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                text = json.loads(line)["text"]
                texts += [text, *split_needs(text)]
    return texts


@pytest.mark.slow  # tokenises ~7,000 texts twice with each tokenizer
@pytest.mark.model
def test_every_shipped_text_gets_the_full_tokenizers_tokens(tmp_path):
    from tokenizers import Tokenizer

    folder = tmp_path / "e5"
    folder.mkdir()
    if (INSTALLED / vs.SOURCE).is_file():
        shutil.copy(INSTALLED / vs.SOURCE, folder / vs.SOURCE)
    else:  # a fresh clone (CI): convert the default model here, seconds
        from matcher.encoders.registry import ensure_default_model

        shutil.copy(ensure_default_model(tmp_path / "models") / vs.SOURCE, folder / vs.SOURCE)
    full = Tokenizer.from_file(str(folder / vs.SOURCE))
    full.enable_truncation(512)
    full.no_padding()
    tok = vs.SubsetTokenizer(folder, max_tokens=512)
    assert tok._subset is not None
    for prompt in ("query: ", "passage: "):
        texts = [prompt + t for t in _shipped_texts()]
        got, want = tok.encode_batch(texts), full.encode_batch(texts)
        mismatched = [
            t for t, g, w in zip(texts, got, want, strict=True) if (g.ids, g.offsets) != (w.ids, w.offsets)
        ]
        assert not mismatched, mismatched[:3]
    sliced = np.load(folder / vs.IDS)["ids"]
    assert len(sliced) < 0.5 * full.get_vocab_size()  # the point: a much smaller vocabulary to load

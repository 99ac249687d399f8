"""Korean text handling: content morphemes for the lexical index, and splitting a request into needs.

A Korean 어절 carries particles (ECU에서, 시험에), so whitespace tokens never match across
sentences; kiwipiepy gives morphemes. English terms and model numbers are lowercased and, where a
code is split (ISO 16750, SUS304, FE-SEM), the joined form is added too, so case and spacing do not
matter.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

CONTENT_TAGS = frozenset({"NNG", "NNP", "NR", "VV", "VA", "XR", "SL", "SH", "SN", "W_SERIAL"})
CODE_TAGS = frozenset({"SL", "SN", "W_SERIAL"})
STOP_MORPHEMES = frozenset({"하", "되", "있", "없", "같", "이", "않", "받", "주", "보", "싶", "드리"})


KIWI_OPTIONS = {"load_multi_dict": False, "load_typo_dict": False}
"""kiwipiepy 0.24.1 with kiwipiepy_model 0.24.0 (the CoNg model), without two of its optional
dictionaries, since kiwi's start-up is the longest step of a cold `matcher match` (docs/speed.md):
- the WikiData multi-word dictionary: half of the start-up (CPU 3.2 s -> 1.5 s on a 2-core EPYC); it
  changes the tokens of 44 of 6,976 catalog, request and need texts ("탄화 규소" -> "탄화규소"), and
  `matcher evaluate --batched --config bm25` gives the same numbers on dev and real-dev;
- the typo dictionary (common misspellings and informal endings): CPU median 2.24 -> 2.08 s over 6
  alternating fresh processes, and not one token changes on the 6,908 shipped texts that are searched.
The built-in proper-noun dictionary stays: without it 1,176 of those texts change ("나노입자" -> "입자")."""

TOKENIZER = "kiwipiepy content morphemes, no multi-word or typo dictionary"
"""Saved in the BM25 manifest entry: an index built with another tokenizer is stale."""


@lru_cache(maxsize=1)
def _kiwi():
    from kiwipiepy import Kiwi

    return Kiwi(**KIWI_OPTIONS)


def warm_up() -> None:
    """Load kiwi's model now: it builds on its first analysis (~2 s of CPU), see `prefetch.start_spare`."""
    _kiwi().tokenize("준비")


def normalize_text(text: str) -> str:
    """NFKC (full-width letters, ㎛ and the like) and collapsed white space."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def tokenize(text: str) -> list[str]:
    """Content morphemes of a text, lowercased, with joined forms of split codes.

    >>> tokenize("차량용 ECU에서 EMC 시험에 떨어졌습니다")
    ['차량', 'ecu', 'emc', '시험', '떨어지']
    """
    return tokenize_many([text])[0]


PARALLEL_FROM = 64
"""From this many texts (an index build, a batch), kiwi analyses the list on its worker threads."""


def tokenize_many(texts: list[str]) -> list[list[str]]:
    """Tokenize a batch of texts. A request and its needs go one at a time: kiwi's list form runs on
    worker threads that do not survive a fork, and would hang in `matcher.prefetch`'s workers."""
    kiwi = _kiwi()
    if len(texts) < PARALLEL_FROM:
        return [_content(kiwi.tokenize(normalize_text(t))) for t in texts]
    return [_content(tokens) for tokens in kiwi.tokenize([normalize_text(t) for t in texts])]


def _content(tokens) -> list[str]:
    words: list[str] = []
    prev_code = None
    for tok in tokens:
        tag = str(tok.tag).split("-")[0]
        if tag == "SO":  # a hyphen inside a code (FE-SEM) keeps the code run going
            continue
        form = tok.form.lower()
        if tag in CODE_TAGS:
            if tag == "W_SERIAL":
                words += [p for p in re.split(r"[-_/.]", form) if p]
            words.append(form)
            # A code split by kiwi or by the writer (ISO 16750, SUS 304, FE-SEM): add the joined form.
            if prev_code is not None and tok.start - (prev_code.start + prev_code.len) <= 1:
                words.append(prev_code.form.lower() + re.sub(r"[-_/.]", "", form))
            prev_code = tok
            continue
        prev_code = None
        if tag in CONTENT_TAGS and tok.form not in STOP_MORPHEMES:
            words.append(form)
    return words


_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|\n+")
_CLAUSE = re.compile(r"(?<=[고며])\s*,\s+|\s*;\s*|\s+(?=(?:또한|그리고|아울러|추가로|더불어)\s)")


_COMPANY_INTRO = re.compile(
    r"(?:회사|업체|기업|제조사|조선사|제약사|공급사|스타트업|벤처|법인|공장|메이커|전문가?\s?기업)"
    r"\s*(?:입니다|이다|예요|이에요|이며|이고)\s*[.!]?$"
)
"""A sentence that only says who the company is ("광전송 모듈을 만드는 회사입니다."): context, not a need."""


def is_company_intro(piece: str) -> bool:
    """True for a piece that introduces the company rather than asking for something."""
    return bool(_COMPANY_INTRO.search(piece.strip()))


def split_needs(text: str, *, max_needs: int = 4, min_chars: int = 12, fold_intro: bool = False) -> list[str]:
    """Split a request into its needs: sentences, then clauses joined by 하고/하며/이며.

    With `fold_intro`, a company introduction ("…를 만드는 회사입니다.") joins the need after it rather
    than being a need of its own. Most real requests open with one (79 of 92 in real-train); folding
    puts fewer teams first but did not rank better (docs/ranking.md), so it is off by default.
    Fragments shorter than `min_chars` are merged into their neighbour; when there are more than
    `max_needs` pieces, the shortest adjacent pairs are merged until they fit. A single-sentence
    request gives one need (the whole request is searched separately anyway).
    """
    text = normalize_text(text)
    if not text or max_needs <= 0:
        return []
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = (sentence or "").strip()
        if not sentence:
            continue
        pieces += [c.strip() for c in _CLAUSE.split(sentence) if c and c.strip()]
    if fold_intro:
        pieces = _fold_intros(pieces)
    merged: list[str] = []
    for piece in pieces:
        if merged and (len(piece) < min_chars or len(merged[-1]) < min_chars):
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    while len(merged) > max_needs:
        i = min(range(len(merged) - 1), key=lambda j: len(merged[j]) + len(merged[j + 1]))
        merged[i : i + 2] = [f"{merged[i]} {merged[i + 1]}"]
    return merged


def _fold_intros(pieces: list[str]) -> list[str]:
    """Each company introduction joins the piece after it (the one before it, when it comes last)."""
    out: list[str] = []
    carry = ""
    for piece in pieces:
        if is_company_intro(piece):
            carry = f"{carry} {piece}".strip()
            continue
        out.append(f"{carry} {piece}".strip())
        carry = ""
    if carry:
        if out:
            out[-1] = f"{out[-1]} {carry}"
        else:
            out.append(carry)
    return out

"""Seeded synthetic catalogs and requests at national-registry sizes (10k to 1M records).

Why: the shipped catalog has about a thousand records, but a national registry of staff,
technologies and equipment has hundreds of thousands; index choice and latency must be measured at
that size without downloading anything. Records are recombined from a real catalog's vocabulary,
kept within the same institute and kind (title from one record, description sentences from others,
keywords, teams, specs and applications drawn from that institute's pools), so the texts look and
embed like real ones and the per-institute structure survives.

Generation is chunked: record `i` depends only on `(seed, i // CHUNK)`, so a smaller catalog is a
prefix of a larger one with the same seed, and records can be streamed lazily.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matcher.catalog import Catalog, load_catalog
from matcher.problems import InputError
from matcher.schema import Capability, CapabilityKind, LabeledRequest

CHUNK = 4096
"""Records per random stream: record i is drawn from `default_rng([seed, i // CHUNK])`."""

CROSS_INSTITUTE = 0.15
"""Share of second description sentences borrowed from another institute's records of the same kind."""

KEEP = 0.7
"""Chance that a record keeps each part of its template (title, lead sentence, fields, application)."""

TITLE_PREFIX = 0.3
"""Share of titles prefixed with one of the institute's keywords (registries repeat equipment names)."""

_REPO = Path(__file__).resolve().parents[1]
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_STAFF = ("team", "role", "field")
_EQUIPMENT = ("model", "specs", "purpose", "location", "accreditation")
_FIELDS = (*_STAFF, *_EQUIPMENT)
_KIND_CODE = {CapabilityKind.staff: "s", CapabilityKind.technology: "t", CapabilityKind.equipment: "e"}
SYNTH_KINDS = tuple(_KIND_CODE)
"""Record kinds that scale with an institute's size and are recombined; profiles and programmes
describe an institute as a whole and are not multiplied."""


def source_catalog(directory: str | Path | None = None) -> Catalog:
    """The catalog whose vocabulary is recombined: `directory`, else data/institutes, else the fixture.

    data/institutes counts as incomplete (and the test fixture is used) when it is missing, fails
    validation, or lacks staff, technology or equipment records (the kinds recombined here).
    """
    if directory is not None:
        return load_catalog(directory)
    for candidate in (_REPO / "data" / "institutes", _REPO / "tests" / "fixtures" / "catalog"):
        try:
            catalog = load_catalog(candidate)
        except InputError:
            continue
        if set(SYNTH_KINDS) <= {c.kind for c in catalog.capabilities}:
            return catalog
    raise FileNotFoundError("no complete catalog to build synthetic records from")


class _Pool:
    """Strings of one field grouped by (institute, kind), flattened so draws are vectorised."""

    def __init__(self, groups: Sequence[Sequence[str]], fallback: Sequence[Sequence[str]] | None = None):
        items: list[str] = []
        offsets, sizes = [], []
        for g, values in enumerate(groups):
            values = list(values) or (list(fallback[g]) if fallback else []) or [""]
            offsets.append(len(items))
            sizes.append(len(values))
            items += values
        self.items = items
        self.offsets = np.array(offsets, dtype=np.int64)
        self.sizes = np.array(sizes, dtype=np.int64)

    def draw(self, group: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Flat item positions: one uniform `u` per record (any trailing shape) within its group."""
        group = group.reshape(group.shape + (1,) * (u.ndim - 1))
        return self.offsets[group] + (u * self.sizes[group]).astype(np.int64)


@dataclass
class Vocabulary:
    """The recombinable parts of a catalog, grouped by (institute, kind)."""

    catalog: Catalog
    kinds: tuple[CapabilityKind, ...]
    template_group: np.ndarray
    """Group of each source record: drawing templates uniformly keeps the institute/kind mix."""
    pools: dict[str, _Pool]
    kind_pools: dict[str, _Pool]
    """Pools grouped by kind alone (cross-institute borrowing)."""
    leads: list[str]
    """First description sentence of each source record."""

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> Vocabulary:
        kinds = SYNTH_KINDS
        catalog = Catalog(
            catalog.institutes, tuple(c for c in catalog.capabilities if c.kind in kinds), catalog.source
        )
        n_groups = len(catalog.institutes) * len(kinds)
        inst_pos = {inst.id: i for i, inst in enumerate(catalog.institutes)}
        fields = ("title", "first", "rest", "keywords", "applications", *_FIELDS)
        grouped: dict[str, list[list[str]]] = {f: [[] for _ in range(n_groups)] for f in fields}
        by_kind: dict[str, list[list[str]]] = {f: [[] for _ in kinds] for f in ("first", "rest")}
        template_group, leads = [], []
        for cap in catalog.capabilities:
            k = kinds.index(cap.kind)
            g = inst_pos[cap.institute] * len(kinds) + k
            template_group.append(g)
            sentences = [s.strip() for s in _SENTENCE.split(cap.description) if s.strip()]
            grouped["title"][g].append(cap.title)
            grouped["first"][g].append(sentences[0])
            leads.append(sentences[0])
            grouped["rest"][g] += sentences[1:]
            by_kind["first"][k].append(sentences[0])
            by_kind["rest"][k] += sentences[1:]
            grouped["keywords"][g] += cap.keywords
            grouped["applications"][g] += cap.applications
            for name in ("team", "role", "field", "model", "specs", "purpose", "location"):
                value = getattr(cap, name)
                if value:
                    grouped[name][g].append(value)
            if cap.kind is CapabilityKind.equipment:
                grouped["accreditation"][g].append(cap.accreditation or "")
        if not template_group:
            raise ValueError("the source catalog has no capability records")
        pools = {f: _Pool(v, grouped["first"] if f == "rest" else None) for f, v in grouped.items()}
        kind_pools = {f: _Pool(v, by_kind["first"] if f == "rest" else None) for f, v in by_kind.items()}
        return cls(catalog, kinds, np.array(template_group, dtype=np.int64), pools, kind_pools, leads)


def _chunk(vocab: Vocabulary, seed: int, chunk: int, start: int, stop: int) -> list[Capability]:
    """Records `start..stop` (all within one chunk), every random draw made up front with numpy.

    Each record follows a template record (its title, lead sentence and some keywords, each kept
    with probability KEEP) and borrows the rest from its institute and kind, so records stay
    coherent while the catalog holds many near-variants, as a registry of similar equipment does.
    """
    rng = np.random.default_rng([seed, chunk])
    n = CHUNK
    templates = vocab.catalog.capabilities
    template = _draw_templates(rng, len(templates))
    group = vocab.template_group[template]
    kind_of = group % len(vocab.kinds)
    u = rng.random((n, 32))
    p = vocab.pools
    title = p["title"].draw(group, u[:, 0])
    first = p["first"].draw(group, u[:, 1])
    rest = p["rest"].draw(group, u[:, 2])
    cross = vocab.kind_pools["rest"].draw(kind_of, u[:, 3])
    keywords = p["keywords"].draw(group, u[:, 6:9])
    applications = p["applications"].draw(group, u[:, 9:12])
    drawn = {f: p[f].draw(group, u[:, 12 + i]).tolist() for i, f in enumerate(_FIELDS)}
    # Per-record decisions as Python lists: indexing numpy scalars in the loop costs more than the rest.
    keep = (u[:, 20:32] < KEEP).tolist()
    n_borrowed = (1 + (u[:, 5] * 3).astype(np.int64)).tolist()
    n_apps = (1 + (u[:, 18] * 2).astype(np.int64)).tolist()
    prefix = (u[:, 17] < TITLE_PREFIX).tolist()
    borrow = (u[:, 19] < CROSS_INSTITUTE).tolist()
    template, title, first, rest, cross = (a.tolist() for a in (template, title, first, rest, cross))
    keywords, applications = keywords.tolist(), applications.tolist()
    items = {f: pool.items for f, pool in p.items()}
    cross_items = vocab.kind_pools["rest"].items
    out = []
    for j in range(start - chunk * CHUNK, stop - chunk * CHUNK):
        tpl = templates[template[j]]
        kind, keep_j = tpl.kind, keep[j]
        own = [k for i, k in enumerate(tpl.keywords) if i >= 8 or keep_j[4 + i]]
        borrowed = [items["keywords"][k] for k in keywords[j][: n_borrowed[j]]]
        kws = list(dict.fromkeys([*own, *borrowed]))
        head = tpl.title if keep_j[0] else items["title"][title[j]]
        lead = vocab.leads[template[j]] if keep_j[1] else items["first"][first[j]]
        second = cross_items[cross[j]] if borrow[j] else items["rest"][rest[j]]
        if kind is CapabilityKind.technology:
            apps = [items["applications"][a] for a in applications[j][: n_apps[j]]]
            apps = list(dict.fromkeys([*tpl.applications[:1], *apps] if keep_j[3] else apps))
            fields: dict = {"applications": [a for a in apps if a]}
        else:
            names = _STAFF if kind is CapabilityKind.staff else _EQUIPMENT
            if keep_j[2]:
                fields = {f: getattr(tpl, f) for f in names}
            else:
                fields = {f: items[f][drawn[f][j]] or None for f in names}
        if prefix[j] and kws and kws[-1] not in head:
            head = f"{kws[-1]} {head}"
        out.append(
            Capability(
                id=f"{tpl.institute}-syn-{_KIND_CODE[kind]}{chunk * CHUNK + j:07d}",
                institute=tpl.institute,
                kind=kind,
                title=head,
                description=f"{lead} {second}" if second != lead else lead,
                keywords=kws,
                **fields,
            )
        )
    return out


def _draw_templates(rng: np.random.Generator, n_templates: int) -> np.ndarray:
    """The first draw of every chunk: which source record each record follows."""
    return rng.integers(0, n_templates, CHUNK)


def synth_templates(n: int, *, seed: int = 0, source: Catalog | None = None, start: int = 0) -> np.ndarray:
    """Source-record position followed by each of records `start..start+n`, without building them.

    Benchmarks use it to give unencoded records vectors derived from encoded siblings.
    """
    n_templates = len((source or source_catalog()).capabilities)
    first, last = start // CHUNK, (start + n - 1) // CHUNK if n else start // CHUNK - 1
    draws = [_draw_templates(np.random.default_rng([seed, c]), n_templates) for c in range(first, last + 1)]
    flat = np.concatenate(draws) if draws else np.zeros(0, np.int64)
    return flat[start - first * CHUNK : start - first * CHUNK + n]


def synth_capabilities(
    n: int, *, seed: int = 0, source: Catalog | None = None, start: int = 0
) -> Iterator[Capability]:
    """Stream records `start..start+n` of the synthetic catalog for `seed` (lazy, chunk by chunk)."""
    vocab = Vocabulary.from_catalog(source or source_catalog())
    stop = start + n
    i = start
    while i < stop:
        chunk = i // CHUNK
        end = min(stop, (chunk + 1) * CHUNK)
        yield from _chunk(vocab, seed, chunk, i, end)
        i = end


def synth_catalog(n: int, *, seed: int = 0, source: Catalog | None = None) -> Catalog:
    """A `Catalog` of `n` synthetic records over the source catalog's institutes."""
    source = source or source_catalog()
    records = tuple(synth_capabilities(n, seed=seed, source=source))
    return Catalog(source.institutes, records, f"synthetic:{n}:seed={seed}:{source.source}")


def edit_records(catalog: Catalog, fraction: float, *, seed: int = 0) -> tuple[Catalog, list[str]]:
    """A copy with `fraction` of the records' descriptions edited (for incremental re-index timing)."""
    rng = np.random.default_rng([seed, 7])
    n = len(catalog.capabilities)
    chosen = set(rng.choice(n, size=round(n * fraction), replace=False).tolist()) if n else set()
    records = list(catalog.capabilities)
    for i in chosen:
        rec = records[i]
        records[i] = rec.model_copy(
            update={"description": f"{rec.description} (개정 {seed}: 장비 사양 갱신)"}
        )
    return Catalog(catalog.institutes, tuple(records), catalog.source), sorted(records[i].id for i in chosen)


def _batchim(word: str) -> bool:
    """Whether a word ends in a final consonant (for 을/를, 이/가); non-Hangul endings read as vowels."""
    last = word.rstrip(" )")[-1:] if word.strip() else ""
    if "가" <= last <= "힣":
        return (ord(last) - 0xAC00) % 28 != 0
    return last.isdigit() and last in "0136789"


def _particle(word: str, with_final: str, without: str) -> str:
    return with_final if _batchim(word) else without


_OPENERS = (
    "저희는 {region}에서 {product}{eul} 생산하는 중소기업입니다.",
    "{product} 양산을 앞두고 기술적인 어려움이 있습니다.",
    "{region} 소재 제조기업으로 {product}{eul} 개발하고 있습니다.",
    "",
)
_NEEDS = (
    "{kw}{eul} 적용하는 과정에서 {kw2} 관련 불량이 반복되어 원인 분석이 필요합니다.",
    "{kw} 분야 전문가의 자문과 {kw2} 시험·평가를 받고 싶습니다.",
    "{app} 과제를 진행 중인데 {kw} 기술 지원을 요청드립니다.",
    "{purpose}{iga} 가능한 장비를 활용하고 싶고 {kw} 측정 데이터도 필요합니다.",
    "{kw}{wa} {kw2} 성능을 검증할 수 있는 기관을 찾고 있습니다.",
)
_PRODUCTS = (
    "자동차 부품",
    "배터리 모듈",
    "산업용 펌프",
    "의료기기",
    "반도체 장비 부품",
    "기능성 원단",
    "디스플레이 필름",
    "정밀 금형",
    "전력 변환 장치",
    "센서 모듈",
    "화장품 용기",
    "농기계",
    "선박 부품",
    "드론",
    "로봇 감속기",
    "수소 용기",
    "통신 모듈",
    "세라믹 부품",
)
_REGIONS = (
    "경기 화성",
    "경남 창원",
    "대구 달서",
    "충남 천안",
    "광주 광산",
    "인천 남동",
    "부산 강서",
    "울산 북구",
)


def synth_requests(
    n: int, *, seed: int = 0, source: Catalog | None = None, joint_share: float = 0.25
) -> list[LabeledRequest]:
    """Requests written from one institute's records (or two, for `joint_share` of them), so labelled.

    Each need sentence fills a company-style template with a source record's keywords, application
    or equipment purpose; the labels are the institutes whose records supplied the phrases.
    """
    source = source or source_catalog()
    records = source.capabilities
    by_inst: dict[str, list[Capability]] = {}
    for rec in records:
        by_inst.setdefault(rec.institute, []).append(rec)
    inst_ids = sorted(by_inst)
    rng = np.random.default_rng([seed, 1 << 20])
    out = []
    for i in range(n):
        k = 2 if rng.random() < joint_share and len(inst_ids) > 1 else 1
        chosen = [inst_ids[j] for j in rng.choice(len(inst_ids), size=k, replace=False)]
        sentences = []
        for inst in chosen:
            rec = by_inst[inst][int(rng.integers(len(by_inst[inst])))]
            kws = rec.keywords or [rec.title]
            a, b = rng.choice(len(kws), size=2, replace=len(kws) < 2)
            kw, kw2 = kws[a], kws[b]
            app = rec.applications[0] if rec.applications else rec.title
            purpose = rec.purpose or rec.title
            template = _NEEDS[int(rng.integers(len(_NEEDS)))]
            sentences.append(
                template.format(
                    kw=kw,
                    kw2=kw2,
                    app=app,
                    purpose=purpose,
                    eul=_particle(kw, "을", "를"),
                    iga=_particle(purpose, "이", "가"),
                    wa=_particle(kw, "과", "와"),
                )
            )
        product = _PRODUCTS[int(rng.integers(len(_PRODUCTS)))]
        opener = _OPENERS[int(rng.integers(len(_OPENERS)))].format(
            region=_REGIONS[int(rng.integers(len(_REGIONS)))],
            product=product,
            eul=_particle(product, "을", "를"),
        )
        text = " ".join(s for s in (opener, *sentences) if s)
        out.append(LabeledRequest(id=f"synth-{seed}-{i:06d}", text=text, institutes=chosen))
    return out

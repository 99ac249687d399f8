"""The catalog: every institute and its capability records, validated, with a content hash.

Files are `data/institutes/<id>.yaml` (format in docs/catalog-format.md). Loading reports every
problem at once (bad YAML, missing field, wrong kind, duplicate id, unknown institute) with file,
line, record and field. The content hash lets an index manifest detect a stale index.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml
from pydantic import ValidationError

from matcher.problems import InputError, Problem, problems_from_validation
from matcher.schema import Capability, CapabilityKind, Institute

try:  # the C loader is ~10x faster on a 2,500-record catalog
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the libyaml build
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


def normalize_name(name: str) -> str:
    """Fold a label for lookup: NFKC, lowercase, no spaces, brackets or punctuation."""
    name = unicodedata.normalize("NFKC", name).lower()
    return re.sub(r"[\s()\[\]{}·.,'\"_-]+", "", name)


_FORMER = re.compile(r"^\s*(구|舊|former)\s+", re.IGNORECASE)
_LEGAL_FORM = re.compile(r"^\s*(\((재|사|주)\)|재단법인|사단법인|주식회사)\s*")
_BRACKETED = re.compile(r"[(\[]([^()\[\]]*)[)\]]")
_WORDS = re.compile(r"\s+")
_LIST_SEPARATORS = re.compile(r"\s*[,;+/·&]\s*|\s+(?:및|와|과|and)\s+")


def _split_outside_brackets(label: str) -> list[str]:
    """Split a list of names on its separators, leaving "(KITECH, 천안)" whole."""
    parts, depth, start = [], 0, 0
    for match in re.finditer(r"[(\[]|[)\]]|" + _LIST_SEPARATORS.pattern, label):
        token = match.group()
        if token in "([":
            depth += 1
        elif token in ")]":
            depth = max(0, depth - 1)
        elif depth == 0:
            parts.append(label[start : match.start()])
            start = match.end()
    parts.append(label[start:])
    return [part.strip() for part in parts if part.strip()]


@dataclass(frozen=True)
class Catalog:
    """All institutes and their capability records, in a stable order."""

    institutes: tuple[Institute, ...]
    capabilities: tuple[Capability, ...]
    source: str = ""
    _by_id: dict[str, Institute] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {i.id: i for i in self.institutes})

    def institute(self, institute_id: str) -> Institute:
        return self._by_id[institute_id]

    def __contains__(self, institute_id: object) -> bool:
        return institute_id in self._by_id

    @property
    def institute_ids(self) -> list[str]:
        return [i.id for i in self.institutes]

    @cached_property
    def content_hash(self) -> str:
        """A hash of everything the index depends on (institutes and records, order-independent)."""
        h = hashlib.sha256()
        for inst in sorted(self.institutes, key=lambda i: i.id):
            h.update(json.dumps(inst.model_dump(), ensure_ascii=False, sort_keys=True).encode())
        for cap in sorted(self.capabilities, key=lambda c: c.id):
            h.update(json.dumps(cap.model_dump(mode="json"), ensure_ascii=False, sort_keys=True).encode())
        return h.hexdigest()[:16]

    @cached_property
    def _name_index(self) -> dict[str, str]:
        index: dict[str, str] = {}
        shared = _shared_former_names(self.institutes)  # e.g. 한국동력자원연구소: KIER's and KIGAM's
        for inst in self.institutes:
            for name in inst.names():
                former = _FORMER.sub("", name)  # "구 한국탄소융합기술원" is also written without "구"
                for key in {normalize_name(name), normalize_name(former)} - shared:
                    index.setdefault(key, inst.id)
        return index

    def resolve(self, label: str) -> str | None:
        """Map an id, acronym, Korean or English name or alias to an institute id (None if unknown).

        Labels in published cases and spreadsheets are rarely bare names, so after an exact lookup it
        tries, in order: without a legal form ("(재)", "재단법인"); "name (ACRONYM)" when the names
        outside and inside the brackets agree (or only one names an institute); "ETRI 한국전자통신연구원"
        or "KITECH 울산본부" when the words that name an institute all name the same one; and a known
        name followed by a unit without a space ("한국생산기술연구원뿌리산업기술연구소"). A label naming
        two institutes ("KITECH, KATECH"), or a list with a name it does not know, resolves to None
        (`resolve_many` splits lists).
        """
        exact = self._lookup(label)
        if exact or not label.strip():
            return exact
        label = _LEGAL_FORM.sub("", label).strip()
        if hit := self._lookup(label):
            return hit
        parts = _split_outside_brackets(label)
        if len(parts) >= 2:  # a list of names: one institute only if every name is that one
            ids = {self.resolve(part) for part in parts}
            return ids.pop() if len(ids) == 1 else None
        inside = _BRACKETED.findall(label)
        if inside:
            named = {self._lookup(part) for part in inside}
            rest = _BRACKETED.sub(" ", label)
            if outside := self.resolve(rest):
                named.add(outside)
            else:  # "A(KIMS)+B" names two institutes
                named |= {self._lookup(word) for word in _WORDS.split(rest) if word}
            named.discard(None)
            return named.pop() if len(named) == 1 else None
        named = {self._lookup(word) for word in _WORDS.split(label) if word} - {None}
        if named:
            return named.pop() if len(named) == 1 else None
        key = normalize_name(label)
        prefixes = [
            (len(name), iid)
            for name, iid in self._name_index.items()
            if len(name) >= 4 and key.startswith(name)
        ]
        return max(prefixes)[1] if prefixes else None

    def resolve_many(self, label: str) -> list[str] | None:
        """Institute ids of a label that may name several ("KITECH, KATECH", "생기원+자동차연",
        "한국재료연구원 및 한국기계연구원"); None when any part names no institute."""
        parts = _split_outside_brackets(label)
        if len(parts) >= 2:
            ids = [self.resolve(part) for part in parts]
            if None not in ids:
                return list(dict.fromkeys(i for i in ids if i))
        hit = self.resolve(label)
        return [hit] if hit else None

    def resolve_labels(self, labels: Iterable[str]) -> tuple[list[str], list[str]]:
        """Institute ids named by `labels` (each may list several; first mention first, no repeats)
        and the labels that name no institute."""
        ids: list[str] = []
        unknown: list[str] = []
        for label in labels:
            resolved = self.resolve_many(label)
            if resolved is None:
                unknown.append(label)
            ids += [i for i in resolved or () if i not in ids]
        return ids, unknown

    def _lookup(self, label: str) -> str | None:
        return self._name_index.get(normalize_name(label))

    def records_of(self, institute_id: str) -> list[Capability]:
        return [c for c in self.capabilities if c.institute == institute_id]

    def counts(self) -> dict[str, dict[str, int]]:
        """Record counts per institute and kind."""
        out = {i.id: {k.value: 0 for k in CapabilityKind} for i in self.institutes}
        for cap in self.capabilities:
            out[cap.institute][cap.kind.value] += 1
        return out

    def subset(self, institute_ids: Iterable[str]) -> Catalog:
        keep = set(institute_ids)
        return Catalog(
            tuple(i for i in self.institutes if i.id in keep),
            tuple(c for c in self.capabilities if c.institute in keep),
            self.source,
        )


def _line_map(node: yaml.Node) -> dict[str, int]:
    """Map each key of a YAML mapping node to its 1-based line."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def _compose_and_construct(text: str) -> tuple[yaml.Node | None, object]:
    """Parse a YAML document once: its node tree (for line numbers) and the data built from it.

    Composing and then loading the text parsed it twice, a third of the catalog's load time;
    `construct_document` builds from the composed tree exactly what `yaml.load` would.
    """
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()


def _parse_institute_file(
    path: Path,
) -> tuple[Institute | None, list[tuple[Capability, int | None]], list[Problem]]:
    """Parse one institute file; return what is valid and every problem found."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [], [Problem(name, f"cannot read file: {exc}")]
    try:
        root, data = _compose_and_construct(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        return None, [], [Problem(name, f"invalid YAML: {reason}", line=line)]
    if not isinstance(data, dict):
        return None, [], [Problem(name, "expected a mapping with 'institute' and 'capabilities'", line=1)]

    problems: list[Problem] = []
    for key in data:
        if key not in ("institute", "capabilities"):
            problems.append(Problem(name, "unknown top-level key", line=_line_map(root).get(key), field=key))
    inst_node = _child(root, "institute")
    institute: Institute | None = None
    raw_inst = data.get("institute")
    if not isinstance(raw_inst, dict):
        problems.append(Problem(name, "missing 'institute' mapping", line=1, field="institute"))
    else:
        try:
            institute = Institute.model_validate(raw_inst)
        except ValidationError as exc:
            problems += problems_from_validation(
                exc,
                file=name,
                line=inst_node.start_mark.line + 1 if inst_node else None,
                field_prefix="institute.",
                field_lines=_line_map(inst_node) if inst_node else None,
            )
        if institute and institute.id != path.stem:
            problems.append(
                Problem(
                    name,
                    f"institute id {institute.id!r} must equal the file name {path.stem!r}",
                    line=_line_map(inst_node).get("id") if inst_node else None,
                    field="institute.id",
                )
            )
    inst_id = institute.id if institute else (raw_inst or {}).get("id", path.stem)

    capabilities: list[tuple[Capability, int | None]] = []
    raw_caps = data.get("capabilities") or []
    caps_node = _child(root, "capabilities")
    if not isinstance(raw_caps, list):
        problems.append(Problem(name, "'capabilities' must be a list", field="capabilities"))
        raw_caps = []
    for i, raw in enumerate(raw_caps):
        node = caps_node.value[i] if isinstance(caps_node, yaml.SequenceNode) else None
        line = node.start_mark.line + 1 if node is not None else None
        if not isinstance(raw, dict):
            problems.append(
                Problem(name, "a capability must be a mapping", line=line, field=f"capabilities[{i}]")
            )
            continue
        record = str(raw.get("id") or f"#{i + 1}")
        raw = dict(raw)
        if "institute" in raw and raw["institute"] != inst_id:
            problems.append(
                Problem(
                    name,
                    f"unknown institute {raw['institute']!r}: records in this file belong to {inst_id!r}",
                    line=_line_map(node).get("institute", line) if node else line,
                    record=record,
                    field="institute",
                )
            )
            continue
        raw["institute"] = inst_id
        try:
            capabilities.append((Capability.model_validate(raw), line))
        except ValidationError as exc:
            problems += problems_from_validation(
                exc, file=name, line=line, record=record, field_lines=_line_map(node) if node else None
            )
    return institute, capabilities, problems


def catalog_files(directory: Path) -> list[Path]:
    """The institute files of a catalog directory, in load order."""
    return sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))


def load_catalog(directory: str | Path) -> Catalog:
    """Load and validate every `*.yaml` file of a catalog directory.

    Raises:
        InputError: with every problem found in every file (nothing is loaded half-way).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError([Problem(str(directory), "catalog directory not found")])
    files = catalog_files(directory)
    if not files:
        raise InputError([Problem(str(directory), "no institute files (*.yaml) found")])
    institutes: list[Institute] = []
    capabilities: list[Capability] = []
    problems: list[Problem] = []
    where: dict[str, str] = {}
    for path in files:
        inst, caps, file_problems = _parse_institute_file(path)
        problems += file_problems
        if inst is not None:
            if inst.id in where:
                problems.append(
                    Problem(
                        str(path),
                        f"duplicate institute id {inst.id!r} (also in {where[inst.id]})",
                        field="institute.id",
                    )
                )
            else:
                where[inst.id] = str(path)
                institutes.append(inst)
        for cap, line in caps:
            key = f"record:{cap.id}"
            if key in where:
                problems.append(
                    Problem(
                        str(path),
                        f"duplicate record id (also in {where[key]})",
                        line=line,
                        record=cap.id,
                        field="id",
                    )
                )
                continue
            where[key] = str(path)
            capabilities.append(cap)
    problems += _ambiguous_names(institutes, where)
    if problems:
        raise InputError(problems)
    return Catalog(tuple(institutes), tuple(capabilities), str(directory))


def _shared_former_names(institutes: Sequence[Institute]) -> set[str]:
    """Former names that several institutes descend from (a split or a merger): they name none of them."""
    owners: dict[str, set[str]] = {}
    for inst in institutes:
        for name in inst.former_names:
            owners.setdefault(normalize_name(name), set()).add(inst.id)
    return {name for name, ids in owners.items() if len(ids) > 1}


def _ambiguous_names(institutes: Sequence[Institute], where: dict[str, str]) -> list[Problem]:
    """A current name or alias that names two institutes would make label resolution ambiguous.

    A former name may be shared (한국동력자원연구소 split into KIER and KIGAM in 1991): it then
    resolves to neither, while each institute's file still records its history.
    """
    seen: dict[str, str] = {}
    out = []
    shared = _shared_former_names(institutes)
    for inst in institutes:
        for name in set(map(normalize_name, inst.names())) - shared:
            other = seen.setdefault(name, inst.id)
            if other != inst.id:
                out.append(
                    Problem(
                        where[inst.id],
                        f"name {name!r} also names institute {other!r}",
                        record=inst.id,
                        field="institute.aliases",
                    )
                )
    return out

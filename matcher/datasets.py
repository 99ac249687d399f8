"""Reading requests and labeled requests from JSONL, with gold labels resolved through the catalog."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from matcher.catalog import Catalog
from matcher.problems import InputError, Problem, problems_from_validation
from matcher.schema import LabeledRequest, Request


@dataclass(frozen=True)
class GoldRequest:
    """A labeled request whose gold labels are resolved to institute ids.

    `unknown` keeps labels that name no institute of the catalog: evaluation counts them as misses
    instead of silently dropping them.
    """

    request: LabeledRequest
    gold: tuple[str, ...]
    unknown: tuple[str, ...] = ()
    line: int = 0

    @property
    def id(self) -> str:
        return self.request.id


def parse_json_line(
    raw: str, *, file: str, line: int, model: type[Request] = Request
) -> Request | list[Problem]:
    """Parse one JSONL line into a request, or return the problems that stop it."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return [Problem(file, f"invalid JSON: {exc.msg} (column {exc.colno})", line=line)]
    if not isinstance(data, dict):
        return [Problem(file, "expected a JSON object", line=line)]
    record = str(data.get("id")) if data.get("id") is not None else None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return problems_from_validation(exc, file=file, line=line, record=record)


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line) for every non-blank line."""
    with open(path, encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            if raw.strip():
                yield number, raw


def load_labeled(path: str | Path, catalog: Catalog, *, strict: bool = True) -> list[GoldRequest]:
    """Load a labeled request set.

    Args:
        path: JSONL file of `LabeledRequest` objects.
        catalog: resolves gold labels (id, acronym, Korean/English name or alias; a label may
            list several institutes, e.g. "KITECH, KATECH").
        strict: if True (default) an unknown gold label is an error; if False it is kept in
            `GoldRequest.unknown` so that evaluation can report it and count it as a miss.

    Raises:
        InputError: every problem in the file, each with its line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError([Problem(str(path), "file not found")])
    out: list[GoldRequest] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for number, raw in iter_jsonl(path):
        parsed = parse_json_line(raw, file=str(path), line=number, model=LabeledRequest)
        if isinstance(parsed, list):
            problems += parsed
            continue
        assert isinstance(parsed, LabeledRequest)
        if parsed.id in seen:
            problems.append(
                Problem(
                    str(path),
                    f"duplicate id (first on line {seen[parsed.id]})",
                    line=number,
                    record=parsed.id,
                    field="id",
                )
            )
            continue
        seen[parsed.id] = number
        gold, unknown = catalog.resolve_labels(parsed.institutes)
        if unknown and strict:
            problems.append(
                Problem(
                    str(path),
                    f"unknown institute label(s) {unknown}",
                    line=number,
                    record=parsed.id,
                    field="institutes",
                )
            )
            continue
        out.append(GoldRequest(parsed, tuple(gold), tuple(unknown), number))
    if problems:
        raise InputError(problems)
    return out

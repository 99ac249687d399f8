"""User-facing input problems: where (file, line, record, field) and what.

Every loader collects problems instead of raising on the first one, so a user fixes a file in one pass.
The CLI prints them and exits with a documented code; no traceback reaches the user.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file."""

    file: str
    message: str
    line: int | None = None
    record: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        parts = [where]
        if self.record:
            parts.append(f"record {self.record}")
        if self.field:
            parts.append(f"field '{self.field}'")
        return f"{' '.join(parts)}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class InputError(Exception):
    """Raised with every problem found in an input; the CLI prints them and exits with code 2."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def problems_from_validation(
    error: ValidationError,
    *,
    file: str,
    line: int | None = None,
    record: str | None = None,
    field_prefix: str = "",
    field_lines: dict[str, int] | None = None,
) -> list[Problem]:
    """Turn a pydantic error into one problem per failing field, with the field's own line if known."""
    out = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err["loc"])
        top = str(err["loc"][0]) if err["loc"] else ""
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "enum":
            msg = f"{msg} (got {err.get('input')!r})"
        out.append(
            Problem(
                file=file,
                line=(field_lines or {}).get(top, line),
                record=record,
                field=f"{field_prefix}{loc}" if loc else None,
                message=msg,
            )
        )
    return out

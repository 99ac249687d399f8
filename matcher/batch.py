"""Batch re-ranking of a backlog: stream requests in, one result line out per request.

Built so that a long run over a large backlog can fail, be killed or be interrupted at any point:

* input is read lazily (JSONL or CSV) and every output line is written whole (one write and a flush,
  an fsync every `fsync_every` lines), so memory stays flat and the output is valid after a crash;
* a re-run with the same output skips the ids already there; a torn last line left by `kill -9` is
  truncated away first;
* a bad row (invalid JSON, missing id or text, duplicate id, over-long text) never stops the run: it
  goes to `<OUTPUT>.errors.jsonl` as {"line", "id", "reason"}.

The matching itself is a callable (`Matcher.match_many`), so this module is pure I/O and bookkeeping
that tests drive with the cheap encoder.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from matcher.encoders.query_cache import QueryVectorStore
from matcher.problems import InputError, Problem, problems_from_validation
from matcher.result import MatchResult
from matcher.schema import Request

Format = Literal["jsonl", "csv"]
MatchFn = Callable[[Iterable[Request]], Iterator[MatchResult]]
"""Turns a stream of requests into a stream of results in the same order (e.g. `Matcher.match_many`)."""

FSYNC_EVERY = 200
ERRORS_SUFFIX = ".errors.jsonl"


def open_query_cache(model_dir: str | Path) -> tuple[QueryVectorStore | None, str | None]:
    """The shared query-vector store under MODEL_DIR/cache, or (None, why) when it cannot be opened:
    a damaged cache costs speed, never the run."""
    path = Path(model_dir) / "cache" / "queries.sqlite"
    try:
        return QueryVectorStore(path), None
    except (sqlite3.Error, OSError) as exc:
        return None, f"{path}: {exc}"


def detect_format(path: str | Path) -> Format:
    """CSV by extension (.csv/.tsv are not both supported: .csv only), JSONL otherwise."""
    return "csv" if Path(path).suffix.lower() == ".csv" else "jsonl"


def errors_path(output: str | Path) -> Path:
    return Path(f"{output}{ERRORS_SUFFIX}")


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RawRow:
    """One input row before validation: its data, or why it could not even be parsed."""

    line: int
    data: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class RowError:
    """A bad row: where, which id (if it had one) and why. One line of the errors file."""

    line: int
    id: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "id": self.id, "reason": self.reason}


def _rename(data: dict[str, Any], id_column: str, text_column: str) -> dict[str, Any]:
    if id_column != "id" and id_column in data:
        data["id"] = data.pop(id_column)
    if text_column != "text" and text_column in data:
        data["text"] = data.pop(text_column)
    return data


def iter_jsonl_rows(path: Path, id_column: str = "id", text_column: str = "text") -> Iterator[RawRow]:
    """Lazily parse a JSONL file; blank lines are skipped, bad bytes and bad JSON become row errors."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawRow(number, error=f"not UTF-8 text (byte {exc.start})")
                continue
            if number == 1:
                text = text.lstrip("\ufeff")
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawRow(number, error=f"invalid JSON: {exc.msg} (column {exc.colno})")
                continue
            if not isinstance(data, dict):
                yield RawRow(number, error="expected a JSON object")
                continue
            yield RawRow(number, _rename(data, id_column, text_column))


def iter_csv_rows(path: Path, id_column: str = "id", text_column: str = "text") -> Iterator[RawRow]:
    """Lazily parse a CSV file with a header; each row's line is the line it starts on.

    The header is checked now, not on the first row, so a wrong column name fails before any output.

    Raises:
        InputError: the header lacks the id or text column (nothing could be matched).
    """
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        header = [h.strip() for h in next(csv.reader(fh), [])]
    missing = [c for c in (id_column, text_column) if c not in header]
    if missing:
        raise InputError(
            [
                Problem(
                    str(path),
                    f"CSV header has no column {', '.join(map(repr, missing))} (columns: {header}); "
                    "name them with --id-column/--text-column",
                    line=1,
                )
            ]
        )
    return _csv_body(path, header, id_column, text_column)


def _csv_body(path: Path, header: list[str], id_column: str, text_column: str) -> Iterator[RawRow]:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        previous_end = reader.line_num
        for row in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                yield RawRow(start, error=f"row has {len(row)} fields, the header has {len(header)}")
                continue
            # Empty cells are absent values (a CSV cannot say null), so optional fields stay None.
            data = {k: v for k, v in zip(header, row, strict=False) if v.strip()}
            yield RawRow(start, _rename(data, id_column, text_column))


def iter_rows(
    path: str | Path, fmt: Format | None = None, *, id_column: str = "id", text_column: str = "text"
) -> Iterator[RawRow]:
    path = Path(path)
    if not path.is_file():
        raise InputError([Problem(str(path), "input file not found")])
    reader = iter_csv_rows if (fmt or detect_format(path)) == "csv" else iter_jsonl_rows
    return reader(path, id_column, text_column)


def count_rows(path: str | Path, fmt: Format | None = None) -> int:
    """Rows in the input (for progress and ETA), counted without parsing or holding them."""
    path = Path(path)
    if (fmt or detect_format(path)) == "csv":
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            return max(0, sum(1 for row in csv.reader(fh) if any(c.strip() for c in row)) - 1)
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _validation_reason(exc: ValidationError, file: str, line: int) -> str:
    problems = problems_from_validation(exc, file=file, line=line)
    return "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems)


@dataclass
class Counts:
    """Running totals of one batch run (the summary)."""

    read: int = 0
    done: int = 0
    skipped: int = 0
    errors: int = 0
    abstained: int = 0


def validate_rows(
    rows: Iterable[RawRow],
    *,
    max_text_chars: int,
    done_ids: set[str],
    counts: Counts,
    on_error: Callable[[RowError], None],
    file: str = "",
) -> Iterator[Request]:
    """Requests still to match, in input order; bad rows go to `on_error`, done ids are skipped.

    Duplicates are judged on the input alone (the first occurrence wins, done or not), so a resumed run
    reports exactly the errors of an uninterrupted one.
    """
    first_line: dict[str, int] = {}
    for row in rows:
        counts.read += 1
        if row.data is None:
            counts.errors += 1
            on_error(RowError(row.line, None, row.error or "unreadable row"))
            continue
        raw_id = row.data.get("id")
        shown_id = None if _blank(raw_id) else str(raw_id).strip()
        missing = [name for name in ("id", "text") if _blank(row.data.get(name))]
        if missing:
            counts.errors += 1
            on_error(RowError(row.line, shown_id, "missing " + " and ".join(missing)))
            continue
        try:
            request = Request.model_validate(row.data)
        except ValidationError as exc:
            counts.errors += 1
            on_error(RowError(row.line, shown_id, _validation_reason(exc, file, row.line)))
            continue
        reason = None
        if request.id in first_line:
            reason = f"duplicate id (first on line {first_line[request.id]})"
        elif len(request.text) > max_text_chars:
            reason = f"text too long ({len(request.text)} characters; max_text_chars is {max_text_chars})"
        if reason:
            counts.errors += 1
            on_error(RowError(row.line, request.id, reason))
            continue
        first_line[request.id] = row.line
        if request.id in done_ids:
            counts.skipped += 1
            continue
        yield request


# ---------------------------------------------------------------------------------------------- output


def csv_columns(top: int) -> list[str]:
    """Flat CSV output: the request, then five columns per recommendation rank."""
    cols = ["id", "abstained", "confidence", "needs", "request", "latency_ms"]
    for k in range(1, top + 1):
        cols += [
            f"rank{k}_institutes",
            f"rank{k}_names",
            f"rank{k}_score",
            f"rank{k}_kind",
            f"rank{k}_evidence",
        ]
    return cols


def csv_row(result: dict[str, Any], top: int) -> list[str]:
    """`MatchResult.to_dict()` flattened: members joined by '+', evidence capability ids by ';'."""
    row = [
        result["id"],
        "true" if result["abstained"] else "false",
        str(result["confidence"]),
        " | ".join(result["needs"]),
        result["request"],
        str(result["latency_ms"]),
    ]
    recs = result["recommendations"]
    for k in range(top):
        if k < len(recs):
            r = recs[k]
            row += [
                "+".join(r["institutes"]),
                "+".join(r["names"]),
                str(r["score"]),
                r["kind"],
                ";".join(e["capability_id"] for e in r["evidence"]),
            ]
        else:
            row += [""] * 5
    return row


def encode_line(result: dict[str, Any], fmt: Format, top: int) -> bytes:
    """One output record as the exact bytes to append (ends with a newline)."""
    if fmt == "jsonl":
        return (json.dumps(result, ensure_ascii=False) + "\n").encode("utf-8")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(csv_row(result, top))
    return buf.getvalue().encode("utf-8")


def _csv_records(fh: io.BufferedReader) -> Iterator[tuple[int, bytes]]:
    """(end offset, bytes) of each complete CSV record; a record is complete at a newline outside quotes.

    With minimal quoting every quote is paired, so a record is complete when its quote count is even.
    """
    buf, offset = b"", 0
    for line in fh:
        buf += line
        offset += len(line)
        if buf.endswith(b"\n") and buf.count(b'"') % 2 == 0:
            yield offset, buf
            buf = b""


def recover_output(path: str | Path, fmt: Format, top: int) -> set[str]:
    """Ids already in an output file, after truncating a torn last record (from a kill).

    Returns an empty set (and writes nothing) when the file does not exist.

    Raises:
        InputError: a record other than the last is unreadable, or a CSV header differs from this run's
            columns: the file is not this command's output and appending would corrupt it.
    """
    path = Path(path)
    if not path.exists():
        return set()
    ids: set[str] = set()
    good_end = 0
    problem: Problem | None = None
    with open(path, "rb") as fh:
        if fmt == "jsonl":
            records: Iterator[tuple[int, bytes]] = _jsonl_records(fh)
        else:
            records = _csv_records(fh)
        for number, (end, raw) in enumerate(records, start=1):
            if problem is not None:  # a bad record followed by more: corruption, not a torn tail
                raise InputError([problem])
            try:
                if fmt == "jsonl":
                    value = json.loads(raw)
                    record_id = value["id"] if isinstance(value, dict) else None
                else:
                    (cells,) = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
                    if number == 1:
                        if cells != csv_columns(top):
                            raise InputError(
                                [
                                    Problem(
                                        str(path),
                                        f"existing CSV output has other columns than this run "
                                        f"(--top {top}); use another --out or the same --top",
                                        line=1,
                                    )
                                ]
                            )
                        good_end = end
                        continue
                    record_id = cells[0] if len(cells) == len(csv_columns(top)) else None
            except (ValueError, KeyError, UnicodeDecodeError):
                record_id = None
            if not isinstance(record_id, str):
                problem = Problem(
                    str(path), "unreadable output line: not written by `matcher batch`", line=number
                )
                continue
            ids.add(record_id)
            good_end = end
    if good_end < path.stat().st_size:
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            os.fsync(fh.fileno())
    return ids


def _jsonl_records(fh: io.BufferedReader) -> Iterator[tuple[int, bytes]]:
    """(end offset, bytes) of each newline-terminated line; an unterminated tail is never complete."""
    offset = 0
    for line in fh:
        offset += len(line)
        if line.endswith(b"\n"):
            yield offset, line


class LineWriter:
    """Appends whole records: one write and a flush each, an fsync every `fsync_every` and at close."""

    def __init__(self, path: str | Path, header: bytes = b"", fsync_every: int = FSYNC_EVERY):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self._fsync_every = fsync_every
        self._pending = 0
        if header and self._fh.tell() == 0:
            self.write(header)

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self._fh.flush()
        self._pending += 1
        if self._pending >= self._fsync_every:
            os.fsync(self._fh.fileno())
            self._pending = 0

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


class ErrorLog:
    """The errors file, rewritten by every run (each run re-reads the whole input), created on demand."""

    def __init__(self, path: Path):
        self.path = path
        self._writer: LineWriter | None = None
        path.unlink(missing_ok=True)

    def __call__(self, error: RowError) -> None:
        if self._writer is None:
            self._writer = LineWriter(self.path)
        self._writer.write((json.dumps(error.to_dict(), ensure_ascii=False) + "\n").encode("utf-8"))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class BatchSummary:
    input: str
    output: str
    total: int = 0
    counts: Counts = field(default_factory=Counts)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def rate(self) -> float:
        return self.counts.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def handled(self) -> int:
        return self.counts.done + self.counts.skipped + self.counts.errors

    def to_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "input": self.input,
            "output": self.output,
            "done": c.done,
            "skipped": c.skipped,
            "errors": c.errors,
            "abstained": c.abstained,
            "seconds": round(self.seconds, 2),
            "rate": round(self.rate, 2),
        }


@contextmanager
def exclusive(path: str | Path) -> Iterator[None]:
    """One run per output file at a time: two runs appending to it would duplicate lines.

    An advisory lock on the output itself (released by the kernel if the process dies, even by kill -9).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                [
                    Problem(
                        str(path),
                        "another `matcher batch` run is writing this file; wait or use another --out",
                    )
                ]
            ) from None
        yield


def run_batch(
    match: MatchFn,
    input_path: str | Path,
    output_path: str | Path,
    *,
    top: int,
    max_text_chars: int,
    input_format: Format | None = None,
    output_format: Format | None = None,
    id_column: str = "id",
    text_column: str = "text",
    fsync_every: int = FSYNC_EVERY,
    progress: Callable[[BatchSummary], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> BatchSummary:
    """Match every new, valid row of the input and append its result line to the output.

    `should_stop` is checked after each written line: when it turns true the run ends cleanly (the output
    is whole and a re-run resumes); `summary.interrupted` says so.
    """
    start = time.perf_counter()
    out_fmt = output_format or detect_format(output_path)
    in_fmt = input_format or detect_format(input_path)
    rows = iter_rows(input_path, in_fmt, id_column=id_column, text_column=text_column)
    summary = BatchSummary(str(input_path), str(output_path), total=count_rows(input_path, in_fmt))
    with exclusive(output_path):
        done_ids = recover_output(output_path, out_fmt, top)
        errors = ErrorLog(errors_path(output_path))
        header = encode_line_header(out_fmt, top)
        writer = LineWriter(output_path, header, fsync_every)
        requests = validate_rows(
            rows,
            max_text_chars=max_text_chars,
            done_ids=done_ids,
            counts=summary.counts,
            on_error=errors,
            file=str(input_path),
        )
        results = match(requests)
        try:
            for result in results:
                writer.write(encode_line(result.to_dict(), out_fmt, top))
                summary.counts.done += 1
                summary.counts.abstained += int(result.abstained)
                summary.seconds = time.perf_counter() - start
                if progress:
                    progress(summary)
                if should_stop():
                    summary.interrupted = True
                    break
            else:
                # Drain rows after the last match (trailing skips and errors) so the counts are complete.
                for _ in requests:
                    pass
        finally:
            close = getattr(results, "close", None)
            if close:
                close()
            writer.close()
            errors.close()
    summary.seconds = time.perf_counter() - start
    if progress:
        progress(summary)
    return summary


def encode_line_header(fmt: Format, top: int) -> bytes:
    if fmt == "jsonl":
        return b""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(csv_columns(top))
    return buf.getvalue().encode("utf-8")

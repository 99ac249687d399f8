"""Triage feedback: which institutes staff accepted or rejected for a request, kept in SQLite.

An embedded database (one file, default `data/feedback.sqlite3`, git-ignored) so that feedback
from daily triage accumulates safely (transactions, no server) and can be exported as labeled
JSONL for evaluation and training. The latest verdict on a (request, institute) pair wins.
Institute labels are resolved through the catalog before they are stored, so the db only
holds catalog ids.

The file is in WAL mode with full sync: the triage desk (`matcher serve`) and `matcher feedback` may
write it at the same time, and a verdict the desk acknowledged survives the server being killed.
Every `add` also appends a row to `decision` (who decided what, with a note, and which institutes the
case was forwarded to): the verdict table keeps the latest word per institute, the log keeps history.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from matcher.atomic import atomic_write
from matcher.catalog import Catalog
from matcher.problems import InputError, Problem

DEFAULT_DB = Path("data/feedback.sqlite3")
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS request (
    id      TEXT PRIMARY KEY,
    text    TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verdict (
    request_id TEXT NOT NULL REFERENCES request(id) ON DELETE CASCADE,
    institute  TEXT NOT NULL,
    accepted   INTEGER NOT NULL CHECK (accepted IN (0, 1)),
    decided    TEXT NOT NULL,
    PRIMARY KEY (request_id, institute)
);
CREATE TABLE IF NOT EXISTS decision (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL REFERENCES request(id) ON DELETE CASCADE,
    accepted   TEXT NOT NULL,
    rejected   TEXT NOT NULL,
    forwarded  TEXT NOT NULL,
    who        TEXT,
    note       TEXT,
    decided    TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Feedback:
    """A request with the institutes triage staff accepted and rejected for it."""

    request_id: str
    text: str
    accepted: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    updated: str = ""
    forwarded: tuple[str, ...] = ()
    """Institutes the case was forwarded to (not a verdict on the match, so not a label)."""

    def to_labeled(self) -> dict:
        """A `LabeledRequest` JSON object: accepted institutes are gold; rejections ride along."""
        out: dict = {"id": self.request_id, "text": self.text}
        if self.accepted:
            out["institutes"] = list(self.accepted)
        if self.rejected:
            out["rejected"] = list(self.rejected)
        return out


@dataclass(frozen=True)
class Decision:
    """One entry of the decision log: what one person decided about a request, when."""

    seq: int
    request_id: str
    accepted: tuple[str, ...]
    rejected: tuple[str, ...]
    forwarded: tuple[str, ...]
    who: str | None
    note: str | None
    decided: str


@dataclass
class ExportReport:
    path: str
    written: int = 0
    with_gold: int = 0
    rejected_only: int = 0
    skipped: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def resolve_labels(catalog: Catalog, labels: Sequence[str], option: str) -> list[str]:
    """Catalog ids for ids or names; every unknown label is reported at once (InputError)."""
    ids, unknown = catalog.resolve_labels(labels)
    if unknown:
        raise InputError(
            [
                Problem(option, f"unknown institute {label!r} (not an id or name in the catalog)")
                for label in unknown
            ]
        )
    return ids


class FeedbackStore:
    """The SQLite file of triage verdicts. Use as a context manager or call `close()`."""

    def __init__(self, path: str | Path = DEFAULT_DB):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # check_same_thread=False: the desk serialises access with its own lock.
            self._db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise InputError([Problem(str(self.path), f"written by a newer matcher (schema {version})")])
            with self._db:
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise InputError([Problem(str(self.path), f"not a feedback database: {exc}")]) from None

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._db:
            yield self._db

    def add(
        self,
        request_id: str,
        text: str | None,
        accepted: Sequence[str] = (),
        rejected: Sequence[str] = (),
        forwarded: Sequence[str] = (),
        who: str | None = None,
        note: str | None = None,
    ) -> Feedback:
        """Record verdicts (catalog ids) for a request; the text is required the first time.

        The verdicts and the decision-log row are one transaction: either both are stored or neither.
        """
        request_id = request_id.strip()
        problems = []
        if not request_id:
            problems.append(Problem("--request", "must not be empty"))
        if not accepted and not rejected and not forwarded:
            problems.append(Problem("--accepted/--rejected", "give at least one institute"))
        both = sorted(set(accepted) & set(rejected))
        if both:
            problems.append(Problem("--accepted/--rejected", f"both accepted and rejected: {both}"))
        existing = self.get(request_id) if request_id else None
        text = text.strip() if text else None
        if existing is None and not text:
            problems.append(Problem("--text", f"request {request_id!r} is new: its text is required"))
        if problems:
            raise InputError(problems)
        now = _now()
        with self._tx() as db:
            if existing is None:
                db.execute("INSERT INTO request VALUES (?, ?, ?, ?)", (request_id, text, now, now))
            else:
                db.execute(
                    "UPDATE request SET text = COALESCE(?, text), updated = ? WHERE id = ?",
                    (text, now, request_id),
                )
            for inst, ok in [*((a, 1) for a in accepted), *((r, 0) for r in rejected)]:
                db.execute(
                    "INSERT INTO verdict VALUES (?, ?, ?, ?) ON CONFLICT (request_id, institute)"
                    " DO UPDATE SET accepted = excluded.accepted, decided = excluded.decided",
                    (request_id, inst, ok, now),
                )
            db.execute(
                "INSERT INTO decision (request_id, accepted, rejected, forwarded, who, note, decided)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    request_id,
                    json.dumps(list(accepted)),
                    json.dumps(list(rejected)),
                    json.dumps(list(forwarded)),
                    (who or "").strip() or None,
                    (note or "").strip() or None,
                    now,
                ),
            )
        found = self.get(request_id)
        assert found is not None
        return found

    def get(self, request_id: str) -> Feedback | None:
        rows = self.all(request_id)
        return rows[0] if rows else None

    def all(self, request_id: str | None = None) -> list[Feedback]:
        """Every request with its verdicts, oldest first (or the one request asked for)."""
        where, args = ("WHERE r.id = ?", (request_id,)) if request_id is not None else ("", ())
        rows = self._db.execute(
            "SELECT r.id, r.text, r.updated, v.institute, v.accepted FROM request r"
            f" LEFT JOIN verdict v ON v.request_id = r.id {where} ORDER BY r.created, r.id, v.institute",
            args,
        ).fetchall()
        out: dict[str, dict] = {}
        for rid, text, updated, inst, ok in rows:
            entry = out.setdefault(rid, {"text": text, "updated": updated, "acc": [], "rej": []})
            if inst is not None:
                entry["acc" if ok else "rej"].append(inst)
        forwarded: dict[str, list[str]] = {}
        for d in self.decisions(request_id):
            seen = forwarded.setdefault(d.request_id, [])
            seen += [f for f in d.forwarded if f not in seen]
        return [
            Feedback(
                rid, e["text"], tuple(e["acc"]), tuple(e["rej"]), e["updated"], tuple(forwarded.get(rid, ()))
            )
            for rid, e in out.items()
        ]

    def decisions(self, request_id: str | None = None) -> list[Decision]:
        """The decision log, oldest first (or one request's)."""
        where, args = ("WHERE request_id = ?", (request_id,)) if request_id is not None else ("", ())
        rows = self._db.execute(
            "SELECT seq, request_id, accepted, rejected, forwarded, who, note, decided FROM decision"
            f" {where} ORDER BY seq",
            args,
        ).fetchall()
        return [
            Decision(
                seq, rid, tuple(json.loads(a)), tuple(json.loads(r)), tuple(json.loads(f)), who, note, at
            )
            for seq, rid, a, r, f, who, note, at in rows
        ]

    def export(self, path: str | Path, *, gold_only: bool = False) -> ExportReport:
        """Write labeled JSONL (`load_labeled` reads it). Requests with only rejections carry no
        `institutes`: `load_labeled` would read them as "fits no institute", so `gold_only` leaves
        them out of files used for evaluation."""
        report = ExportReport(str(path))
        with atomic_write(path) as fh:
            for fb in self.all():
                if not fb.accepted:
                    report.rejected_only += 1
                    if gold_only:
                        report.skipped.append(fb.request_id)
                        continue
                else:
                    report.with_gold += 1
                fh.write(json.dumps(fb.to_labeled(), ensure_ascii=False) + "\n")
                report.written += 1
        return report

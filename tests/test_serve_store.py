"""The feedback store as the desk uses it: WAL mode, the decision log, forwarded institutes."""

from __future__ import annotations

import sqlite3

from matcher.feedback import FeedbackStore


def test_wal_mode_and_decision_log(tmp_path):
    db = tmp_path / "fb.sqlite3"
    with FeedbackStore(db) as store:
        store.add("r1", "다이캐스팅 기공", ["kims"], who="김담당", note="1순위 수락")
        store.add("r1", None, rejected=["ktl"], forwarded=["katech"], who="이담당")
        store.add("r2", "EMC 시험", forwarded=["ktl"], note="  ")
        fb = store.get("r1")
        assert fb is not None
        assert (fb.accepted, fb.rejected, fb.forwarded) == (("kims",), ("ktl",), ("katech",))
        log = store.decisions("r1")
        assert [(d.accepted, d.rejected, d.forwarded, d.who, d.note) for d in log] == [
            (("kims",), (), (), "김담당", "1순위 수락"),
            ((), ("ktl",), ("katech",), "이담당", None),
        ]
        # a forward alone is a decision, not a verdict: no label in the export
        r2 = store.get("r2")
        assert r2 is not None and (r2.accepted, r2.rejected, r2.forwarded) == ((), (), ("ktl",))
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT count(*) FROM decision").fetchone()[0] == 3


def test_version_one_file_is_upgraded_in_place(tmp_path):
    """A db written before the decision log opens, keeps its verdicts and gains the log."""
    db = tmp_path / "old.sqlite3"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE request (id TEXT PRIMARY KEY, text TEXT NOT NULL, created TEXT NOT NULL,"
        " updated TEXT NOT NULL);"
        "CREATE TABLE verdict (request_id TEXT NOT NULL, institute TEXT NOT NULL, accepted INTEGER NOT NULL,"
        " decided TEXT NOT NULL, PRIMARY KEY (request_id, institute));"
        "INSERT INTO request VALUES ('old', '예전 요청', '2025-01-01', '2025-01-01');"
        "INSERT INTO verdict VALUES ('old', 'kims', 1, '2025-01-01');"
        "PRAGMA user_version = 1;"
    )
    con.close()
    with FeedbackStore(db) as store:
        assert store.get("old").accepted == ("kims",)
        store.add("old", None, forwarded=["keti"], who="박담당")
        assert store.get("old").forwarded == ("keti",)

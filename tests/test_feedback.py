"""Triage feedback: SQLite round trip to labeled JSONL that `load_labeled` reads back."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from matcher.cli.app import app
from matcher.datasets import load_labeled
from matcher.feedback import FeedbackStore, resolve_labels
from matcher.problems import InputError

runner = CliRunner()


def test_round_trip_to_labeled_jsonl(tmp_path, fixture_catalog):
    db, out = tmp_path / "fb.sqlite3", tmp_path / "fb.jsonl"
    with FeedbackStore(db) as store:
        store.add(
            "r1", "알루미늄 다이캐스팅 기공 불량", resolve_labels(fixture_catalog, ["KIMS"], "a"), ["ktl"]
        )
        store.add("r2", "EMC 시험", ["katech", "ktl"])
        store.add("r3", "엉뚱한 요청", rejected=["keti"])
        store.add("r2", None, rejected=["ktl"])  # the latest verdict wins; the text is kept
        report = store.export(out)
    assert (report.written, report.with_gold, report.rejected_only) == (3, 2, 1)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {
        "id": "r1",
        "text": "알루미늄 다이캐스팅 기공 불량",
        "institutes": ["kims"],
        "rejected": ["ktl"],
    }
    assert lines[1] == {"id": "r2", "text": "EMC 시험", "institutes": ["katech"], "rejected": ["ktl"]}
    assert lines[2] == {"id": "r3", "text": "엉뚱한 요청", "rejected": ["keti"]}
    golds = load_labeled(out, fixture_catalog)
    assert [g.gold for g in golds] == [("kims",), ("katech",), ()]

    # reopening the file sees the same data; --gold-only leaves rejection-only requests out
    with FeedbackStore(db) as store:
        assert [f.request_id for f in store.all()] == ["r1", "r2", "r3"]
        report = store.export(tmp_path / "gold.jsonl", gold_only=True)
    assert report.skipped == ["r3"]
    assert [g.id for g in load_labeled(tmp_path / "gold.jsonl", fixture_catalog)] == ["r1", "r2"]


def test_add_validates(tmp_path, fixture_catalog):
    with FeedbackStore(tmp_path / "fb.sqlite3") as store:
        with pytest.raises(InputError, match="text is required"):
            store.add("new", None, ["kims"])
        with pytest.raises(InputError, match="at least one"):
            store.add("r", "텍스트")
        with pytest.raises(InputError, match="both"):
            store.add("r", "텍스트", ["kims"], ["kims"])
        assert store.all() == []
    with pytest.raises(InputError) as exc:
        resolve_labels(fixture_catalog, ["kims", "없는기관", "nope"], "--accepted")
    assert len(exc.value.problems) == 2


def test_not_a_database_is_an_input_error(tmp_path):
    path = tmp_path / "junk.sqlite3"
    path.write_text("this is not sqlite " * 100)
    with pytest.raises(InputError):
        FeedbackStore(path)


def test_schema_is_plain_sqlite(tmp_path):
    db = tmp_path / "fb.sqlite3"
    with FeedbackStore(db) as store:
        store.add("r1", "텍스트", ["kims"])
    con = sqlite3.connect(db)
    assert con.execute("SELECT request_id, institute, accepted FROM verdict").fetchall() == [
        ("r1", "kims", 1)
    ]
    con.close()


def test_cli_add_list_export(tmp_path, fast_config_file):
    db, out = tmp_path / "fb.sqlite3", tmp_path / "out.jsonl"
    base = ["--db", str(db)]
    verdicts = ["--accepted", "KETI", "--accepted", "한국세라믹기술원", "--rejected", "ktl", "--json"]
    result = runner.invoke(
        app,
        [
            "feedback",
            "add",
            *base,
            "-C",
            str(fast_config_file),
            "--request",
            "q1",
            "--text",
            "SiC 모듈 크랙",
            *verdicts,
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"id": "q1", "accepted": ["keti", "kicet"], "rejected": ["ktl"]}
    bad = runner.invoke(
        app, ["feedback", "add", *base, "-C", str(fast_config_file), "-r", "q2", "-a", "nope"]
    )
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    listed = runner.invoke(app, ["feedback", "list", *base, "--json"])
    assert [f["id"] for f in json.loads(listed.stdout)["feedback"]] == ["q1"]
    exported = runner.invoke(app, ["feedback", "export", *base, "--out", str(out), "--json"])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["with_gold"] == 1
    assert json.loads(out.read_text())["institutes"] == ["keti", "kicet"]

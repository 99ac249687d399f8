"""The desk's JSON API over the fixture catalog with the hashing encoder: match parity with the library,
feedback into SQLite, background batch jobs, micro-batching and error responses."""

from __future__ import annotations

import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from matcher.result import MatchResult
from matcher.schema import Request
from matcher.serve.app import create_app
from matcher.serve.batcher import MicroBatcher
from matcher.serve.desk import Desk, DeskSettings
from tests.conftest import FIXTURE_REQUESTS

REQUESTS = [json.loads(line) for line in FIXTURE_REQUESTS.read_text(encoding="utf-8").splitlines()]
DIECAST = "알루미늄 다이캐스팅 하우징에 기공 불량이 많고, 개선품은 차량 진동 내구 시험까지 받아야 합니다."


def without_latency(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "latency_ms"}


def test_healthz_names_model_index_and_catalog(client, desk):
    data = client.get("/healthz").json()
    assert data["status"] == "ok"
    assert data["catalog"]["hash"] == desk.catalog.content_hash == data["index"]["catalog_hash"]
    assert data["model"]["retrievers"] == ["hashing", "bm25"]
    assert "hashing" in data["model"]["encoders"]
    assert data["versions"]["matcher"] and data["versions"]["fastapi"]


@pytest.mark.parametrize("row", REQUESTS[:4], ids=lambda r: r["id"])
def test_match_is_exactly_the_library_result(client, fast_matcher, row):
    response = client.post("/api/match", json={"text": row["text"]})
    assert response.status_code == 200
    expected = fast_matcher.match(Request(id="request", text=row["text"])).to_dict()
    assert without_latency(response.json()) == without_latency(expected)


def test_match_top_region_and_id(client, fast_matcher):
    data = client.post("/api/match", json={"text": DIECAST, "top": 2, "region": "경남", "id": "t-1"}).json()
    assert data["id"] == "t-1" and len(data["recommendations"]) <= 2
    wider = client.post("/api/match", json={"text": DIECAST, "top": 4}).json()
    assert [r["institutes"] for r in wider["recommendations"][:2]] == [
        r["institutes"] for r in data["recommendations"]
    ]
    # the CLI rebuilds the same result from the API's JSON (what `matcher match` prints via the desk)
    assert MatchResult.from_dict(data).to_dict() == data


def test_match_rejects_bad_input_clearly(client):
    for body in ({}, {"text": ""}, {"text": "   "}, {"text": "x", "top": 0}, {"text": "x", "surprise": 1}):
        response = client.post("/api/match", json=body)
        assert response.status_code == 422, body
        data = response.json()
        assert "invalid input" in data["error"] and data["problems"]
        assert "Traceback" not in response.text
    response = client.post("/api/match", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "Traceback" not in response.text


def test_concurrent_requests_share_one_encoder_call(fast_matcher):
    """Requests arriving within the window are matched in one `match_batch` call, with the same results."""
    calls: list[int] = []

    def run(top, requests):
        calls.append(len(requests))
        return fast_matcher.with_config(fast_matcher.config.replace(top=top)).match_batch(requests)

    batcher = MicroBatcher(run, window_ms=200, max_batch=8)
    try:
        texts = [r["text"] for r in REQUESTS[:6]]
        futures = [batcher.submit(Request(id=f"r{i}", text=t), 5) for i, t in enumerate(texts)]
        results = [f.result(timeout=30) for f in futures]
    finally:
        batcher.close()
    assert calls == [6]
    assert batcher.stats.to_dict()["largest"] == 6
    for i, (text, result) in enumerate(zip(texts, results, strict=True)):
        alone = fast_matcher.match(Request(id=f"r{i}", text=text))
        assert without_latency(result.to_dict()) == without_latency(alone.to_dict())


def test_batcher_groups_by_top_and_reports_errors(fast_matcher):
    def run(top, requests):
        if top == 3:
            raise ValueError("boom")
        return fast_matcher.with_config(fast_matcher.config.replace(top=top)).match_batch(requests)

    batcher = MicroBatcher(run, window_ms=100, max_batch=8)
    try:
        ok = batcher.submit(Request(id="a", text=DIECAST), 2)
        bad = batcher.submit(Request(id="b", text=DIECAST), 3)
        assert len(ok.result(timeout=30).recommendations) <= 2
        with pytest.raises(ValueError, match="boom"):
            bad.result(timeout=30)
    finally:
        batcher.close()


def test_threads_hitting_the_api_at_once(client, fast_matcher):
    texts = [r["text"] for r in REQUESTS]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda t: client.post("/api/match", json={"text": t}).json(), texts))
    for text, data in zip(texts, answers, strict=True):
        assert without_latency(data) == without_latency(
            fast_matcher.match(Request(id="request", text=text)).to_dict()
        )


def test_feedback_lands_in_the_sqlite_store(client, desk):
    body = {
        "request_id": "desk-t1",
        "text": DIECAST,
        "accepted": ["KIMS"],
        "rejected": ["한국산업기술시험원"],
        "forwarded": ["katech"],
        "who": "김담당",
        "note": "기업 통화 후 결정",
    }
    data = client.post("/api/feedback", json=body).json()
    assert data["accepted"] == ["kims"] and data["rejected"] == ["ktl"] and data["forwarded"] == ["katech"]
    con = sqlite3.connect(desk.settings.feedback_db)
    rows = con.execute("SELECT institute, accepted FROM verdict WHERE request_id = 'desk-t1'").fetchall()
    assert sorted(rows) == [("kims", 1), ("ktl", 0)]
    log = con.execute(
        "SELECT who, note, forwarded FROM decision WHERE seq = ?", (data["decision"],)
    ).fetchone()
    assert log == ("김담당", "기업 통화 후 결정", '["katech"]')


def test_feedback_errors_name_the_field(client):
    response = client.post("/api/feedback", json={"request_id": "x", "text": "t", "accepted": ["없는기관"]})
    assert response.status_code == 422
    problem = response.json()["problems"][0]
    assert problem["file"] == "accepted" and "없는기관" in problem["message"]
    response = client.post("/api/feedback", json={"request_id": "new-one", "accepted": ["kims"]})
    assert response.status_code == 422 and "text is required" in response.text


def test_batch_upload_runs_in_background_and_downloads(client, desk, fast_matcher):
    lines = [json.dumps(r, ensure_ascii=False) for r in REQUESTS[:5]]
    lines.insert(2, "{broken json")
    lines.append(json.dumps({"id": "no-text"}))
    upload = ("backlog.jsonl", ("\n".join(lines) + "\n").encode(), "application/x-ndjson")
    response = client.post("/api/batch", files={"file": upload})
    assert response.status_code == 202
    job = desk.jobs.wait(response.json()["id"])
    assert job.status == "done" and (job.done, job.errors, job.total) == (5, 2, 7)
    assert client.get(f"/api/batch/{job.id}").json()["done"] == 5
    results = [json.loads(x) for x in client.get(f"/api/batch/{job.id}/results").text.splitlines()]
    assert [r["id"] for r in results] == [r["id"] for r in REQUESTS[:5]]
    for row, result in zip(REQUESTS[:5], results, strict=True):
        expected = fast_matcher.match(Request.model_validate(row)).to_dict()
        assert without_latency(result) == without_latency(expected)
    errors = [json.loads(x) for x in client.get(f"/api/batch/{job.id}/errors").text.splitlines()]
    assert [(e["line"], e["id"]) for e in errors] == [(3, None), (7, "no-text")]
    assert job.id in [j["id"] for j in client.get("/api/batch").json()["jobs"]]


def test_batch_csv_and_bad_uploads(client, desk):
    csv_text = "id,text\nc1,알루미늄 다이캐스팅 기공 불량\nc2,ECU EMC 노이즈 대책\n"
    response = client.post("/api/batch", files={"file": ("list.csv", csv_text.encode(), "text/csv")})
    job = desk.jobs.wait(response.json()["id"])
    assert job.status == "done" and job.done == 2
    response = client.post("/api/batch", files={"file": ("notes.txt", b"hello", "text/plain")})
    assert response.status_code == 422 and ".jsonl" in response.json()["problems"][0]["message"]
    bad_header = client.post("/api/batch", files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")})
    job = desk.jobs.wait(bad_header.json()["id"])
    assert job.status == "failed" and "no column" in job.message
    assert client.get("/api/batch/ffffffffffff").status_code == 404
    assert client.get("/api/batch/../../etc/passwd").status_code == 404


def test_interrupted_job_resumes_on_restart(fast_matcher, tmp_path):
    """A job left `running` by a crash is queued again by the next desk and finishes without duplicates."""
    settings = DeskSettings(feedback_db=tmp_path / "fb.sqlite3", work_dir=tmp_path)
    first = Desk(fast_matcher, settings)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in REQUESTS[:6]).encode()
    job = first.jobs.create("b.jsonl", data)
    first.jobs.wait(job.id)
    first.close()
    out = first.jobs.output_path(job)
    kept = out.read_bytes().splitlines(keepends=True)[:2]
    out.write_bytes(b"".join(kept) + b'{"id": "torn')  # a crash mid-line, two results written
    state = json.loads((out.parent / "job.json").read_text())
    (out.parent / "job.json").write_text(json.dumps({**state, "status": "running"}))
    second = Desk(fast_matcher, settings)
    try:
        resumed = second.jobs.wait(job.id)
        assert resumed.status == "done" and (resumed.skipped, resumed.done) == (2, 4)
        ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
        assert ids == [r["id"] for r in REQUESTS[:6]]
    finally:
        second.close()


def test_openapi_docs_are_served_without_a_cdn(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower() and "https://" not in docs.text.replace("https://fastapi", "")
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/api/match", "/api/feedback", "/api/batch"} <= set(paths)


def test_unexpected_error_is_a_message_without_traceback(fast_matcher, tmp_path):
    desk = Desk(fast_matcher, DeskSettings(feedback_db=tmp_path / "fb.sqlite3", work_dir=tmp_path))
    desk.close()  # a request arriving while the desk shuts down
    with TestClient(create_app(desk), raise_server_exceptions=False) as c:
        response = c.post("/api/match", json={"text": DIECAST})
        assert response.status_code == 500
        assert "internal error" in response.json()["error"] and "Traceback" not in response.text
        page = c.get("/match", params={"text": DIECAST}, headers={"Accept": "text/html"})
        assert page.status_code == 500 and "서버 내부 오류" in page.text and "Traceback" not in page.text


def test_matching_and_jobs_run_on_their_own_threads(desk):
    names = {t.name for t in threading.enumerate()}
    assert "matcher-batcher" in names and "matcher-jobs" in names

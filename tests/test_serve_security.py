"""The desk's security promises: escaped user text, a 1 MB body limit, no tracebacks, loopback by
default, and a token that every call needs once set."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from matcher.cli.app import app as cli
from matcher.serve.app import create_app
from matcher.serve.security import TOKEN_COOKIE, is_loopback

NASTY = "<script>alert('x')</script> <b>굵게</b> \"인용\" 'single' & 다이캐스팅 기공 불량"
TOKEN = "s3cret-token-for-tests-0123"


def assert_escaped(html: str) -> None:
    assert "<script>alert" not in html and "<b>굵게</b>" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;b&gt;굵게&lt;/b&gt;" in html
    assert "&#34;인용&#34;" in html or "&quot;인용&quot;" in html


def test_user_text_is_escaped_on_the_result_page(client):
    assert_escaped(
        client.post("/match", data={"text": NASTY, "company": '"><img src=x onerror=alert(1)>'}).text
    )
    page = client.post("/match", data={"text": NASTY, "company": '"><img src=x onerror=alert(1)>'}).text
    assert "<img src=x" not in page


def test_user_text_is_escaped_in_a_match_link(client):
    page = client.get("/match", params={"text": NASTY, "region": "<i>경남</i>"}).text
    assert_escaped(page)
    assert "<i>경남</i>" not in page
    # the link back to this result is an escaped attribute too
    assert 'href="/match?text=%3Cscript%3E' in page


def test_search_text_is_escaped_on_the_catalog(client):
    page = client.get("/catalog", params={"q": NASTY}).text
    assert_escaped(page)


def test_one_megabyte_body_is_refused_without_traceback(client):
    big = "가" * (1 << 20)
    for response in (
        client.post("/api/match", json={"text": big}),
        client.post("/match", data={"text": big}),
        client.post("/api/feedback", json={"request_id": "r", "text": big, "accepted": ["kims"]}),
    ):
        assert response.status_code == 413
        data = response.json()
        assert "너무 큽니다" in data["error"] and "too large" in data["error"]
        assert data["limit_bytes"] == 1 << 20
        assert "Traceback" not in response.text


def test_chunked_body_without_length_is_counted(client):
    def chunks():
        for _ in range(20):
            yield b"x" * 100_000

    response = client.post("/api/match", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "Traceback" not in response.text


def test_errors_never_show_a_traceback(client):
    for response in (
        client.get("/nope"),
        client.get("/api/batch/zzz"),
        client.post("/api/match", content=b"\xff\xfe", headers={"Content-Type": "application/json"}),
        client.get("/match", params={"text": "x", "top": "many"}),
    ):
        assert response.status_code in (404, 422)
        assert "Traceback" not in response.text and 'File "' not in response.text


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "[::1]"])
def test_loopback_addresses(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.0.10", "10.1.2.3", "example.com"])
def test_other_addresses_are_not_loopback(host):
    assert not is_loopback(host)


def test_non_loopback_bind_without_token_refuses_to_start(monkeypatch):
    monkeypatch.delenv("MATCHER_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "접근 토큰" in message and "requires a token" in message
    assert "Traceback" not in result.output
    weak = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--token", "short"])
    assert weak.exit_code == 2 and "16" in weak.output


@pytest.fixture(scope="module")
def locked(desk):
    with TestClient(create_app(desk, token=TOKEN)) as c:
        yield c


def count_rows(desk) -> tuple[int, int]:
    con = sqlite3.connect(desk.settings.feedback_db)
    try:
        return (
            con.execute("SELECT count(*) FROM request").fetchone()[0],
            con.execute("SELECT count(*) FROM decision").fetchone()[0],
        )
    finally:
        con.close()


def test_with_a_token_calls_without_it_get_401_and_change_nothing(locked, desk):
    before = (count_rows(desk), len(desk.jobs.all()), desk.batcher.stats.requests)
    feedback = {"request_id": "sneaky", "text": "몰래", "accepted": ["kims"]}
    for response in (
        locked.get("/"),
        locked.get("/healthz"),
        locked.get("/docs"),
        locked.get("/openapi.json"),
        locked.get("/catalog"),
        locked.get("/match", params={"text": "다이캐스팅"}),
        locked.post("/api/match", json={"text": "다이캐스팅"}),
        locked.post("/api/feedback", json=feedback),
        locked.post("/api/feedback", json=feedback, headers={"Authorization": "Bearer wrong-token-000000"}),
        locked.post("/api/feedback", json=feedback, headers={"Cookie": f"{TOKEN_COOKIE}=wrong"}),
        locked.post("/api/batch", files={"file": ("a.jsonl", b'{"id": "1", "text": "x"}\n')}),
        locked.get("/static/desk.css"),
    ):
        assert response.status_code == 401, response.request.url
        assert "토큰" in response.json()["error"]
    assert (count_rows(desk), len(desk.jobs.all()), desk.batcher.stats.requests) == before


def test_with_the_token_calls_work(locked, desk):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert locked.get("/healthz", headers=auth).json()["status"] == "ok"
    data = locked.post(
        "/api/feedback", json={"request_id": "ok-1", "text": "다이캐스팅", "accepted": ["kims"]}, headers=auth
    )
    assert data.status_code == 200 and data.json()["accepted"] == ["kims"]


def test_token_link_sets_a_cookie_and_drops_the_token_from_the_url(desk):
    with TestClient(create_app(desk, token=TOKEN)) as c:
        first = c.get("/catalog", params={"q": "기공", "token": TOKEN}, follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"] == "/catalog?q=%EA%B8%B0%EA%B3%B5"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert c.get("/catalog", params={"q": "기공"}).status_code == 200  # the cookie now opens pages
        assert c.post("/api/match", json={"text": "다이캐스팅 기공"}).status_code == 200
    with TestClient(create_app(desk, token=TOKEN)) as fresh:
        assert fresh.get("/", params={"token": "nope"}).status_code == 401


def test_cross_site_writes_are_refused(client, desk):
    before = count_rows(desk)
    body = {"request_id": "csrf", "text": "몰래", "accepted": ["kims"]}
    evil = client.post("/api/feedback", json=body, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403 and "cross-site" in evil.json()["error"]
    form = client.post(
        "/batch", files={"file": ("a.jsonl", b'{"id": "1", "text": "x"}\n')}, headers={"Origin": "null"}
    )
    assert form.status_code == 403
    assert count_rows(desk) == before
    same = client.post("/api/feedback", json=body, headers={"Origin": "http://testserver"})
    assert same.status_code == 200


def test_foreign_host_names_are_refused_on_loopback(desk):
    from matcher.serve.security import loopback_hosts

    with TestClient(
        create_app(desk, allowed_hosts=loopback_hosts("127.0.0.1")), base_url="http://127.0.0.1:8765"
    ) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"Host": "localhost:8765"}).status_code == 200
        rebound = c.get("/healthz", headers={"Host": "evil.example:8765"})
        assert rebound.status_code == 403 and "not allowed" in rebound.json()["error"]

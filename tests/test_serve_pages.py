"""The desk's Korean pages: result page content, linkable /match, catalog, batch and evaluation."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from matcher.cli.app import app as cli
from matcher.schema import Request
from matcher.serve.app import create_app
from matcher.serve.desk import Desk, DeskSettings, desk_request_id
from tests.conftest import FIXTURE_REQUESTS

JOINT = "알루미늄 다이캐스팅 하우징 기공 불량 개선이 필요합니다. 또한 차량 전장품의 EMC 노이즈 시험도 받아야 합니다."


def test_home_is_a_korean_form(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<html lang="ko">' in page.text and "기업의 기술애로 내용" in page.text
    assert 'action="/match"' in page.text


def test_result_page_shows_what_the_api_returns(client, fast_matcher):
    result = fast_matcher.match(Request(id="x", text=JOINT)).to_dict()
    page = client.post("/match", data={"text": JOINT}).text
    for rec in result["recommendations"]:
        assert " + ".join(rec["names"]) in page
        for e in rec["evidence"]:
            assert f'data-capability="{e["capability_id"]}"' in page
    assert f'신뢰도 <b id="confidence">{result["confidence"]:.2f}</b>' in page
    # evidence is grouped by need, with the record kind in Korean
    for n in range(1, len(result["needs"]) + 1):
        assert f"세부 항목 {n}" in page
    assert re.search(r'class="kind kind-(staff|technology|equipment)">(인력|기술|장비)<', page)
    joint = [r for r in result["recommendations"] if r["kind"] == "joint"]
    if joint:
        assert "융복합" in page and "담당:" in page
    assert f'data-request-id="{desk_request_id(JOINT)}"' in page
    assert "수락" in page and "거절" in page and "전달" in page


def test_match_link_renders_the_same_result(client):
    posted = client.post("/match", data={"text": JOINT, "region": "경남"}).text
    link = re.search(r'href="(/match\?[^"]+)" id="result-link"', posted).group(1).replace("&amp;", "&")
    got = client.get(link).text
    strip = lambda html: re.sub(r"\d+ ms", "", html)  # noqa: E731
    assert strip(got) == strip(posted)


@pytest.mark.parametrize("text", [JOINT, "오늘 점심 메뉴를 추천해 주세요"])
def test_review_flag_when_abstained_or_low_confidence(client, desk, fast_matcher, text):
    result = fast_matcher.match(Request(id="x", text=text))
    page = client.get("/match", params={"text": text}).text
    wanted = result.abstained or result.confidence < desk.settings.review_below
    assert ("담당자 검토 필요" in page) == wanted


def test_review_flag_follows_the_threshold(fast_matcher, tmp_path):
    strict = Desk(
        fast_matcher, DeskSettings(feedback_db=tmp_path / "fb.sqlite3", work_dir=tmp_path, review_below=1.0)
    )
    try:
        with TestClient(create_app(strict)) as c:
            page = c.get("/match", params={"text": JOINT}).text
        assert 'id="review-flag"' in page and "기준 1.00보다 낮습니다" in page
    finally:
        strict.close()


def test_existing_feedback_is_shown_on_the_result_page(client):
    client.post(
        "/api/feedback", json={"request_id": desk_request_id(JOINT), "text": JOINT, "accepted": ["kims"]}
    )
    assert "기존 기록 — 수락: 한국재료연구원" in client.get("/match", params={"text": JOINT}).text


def test_empty_request_asks_again(client):
    page = client.post("/match", data={"text": "  "})
    assert page.status_code == 422 and "요청 내용을 입력하세요" in page.text


def test_catalog_lists_and_searches(client, desk):
    page = client.get("/catalog").text
    for inst in desk.catalog.institutes:
        assert inst.name_ko in page
    found = client.get("/catalog", params={"q": "다이캐스팅"}).text
    assert "알루미늄 주조재 결함 저감 기술" in found and "관련 레코드" in found
    assert "일치하는 레코드가 없습니다" in client.get("/catalog", params={"q": "양자컴퓨터우주선"}).text
    inst = client.get("/catalog/kims").text
    assert "한국재료연구원" in inst and "kims-t02" in inst and "일반 지식" in inst
    missing = client.get("/catalog/nope", headers={"Accept": "text/html"})
    assert missing.status_code == 404 and "기관이 없습니다" in missing.text


def test_batch_page_upload_without_js(client, desk):
    body = '{"id": "p1", "text": "알루미늄 다이캐스팅 기공"}\n'.encode()
    response = client.post("/batch", files={"file": ("desk.jsonl", body)}, follow_redirects=False)
    assert response.status_code == 303
    job = desk.jobs.all()[0]
    desk.jobs.wait(job.id)
    page = client.get("/batch").text
    assert "desk.jsonl" in page and "완료" in page and f"/api/batch/{job.id}/results" in page
    bad = client.post("/batch", files={"file": ("x.pdf", b"%PDF")})
    assert bad.status_code == 422 and ".jsonl 또는 .csv" in bad.text


def test_evaluation_page_shows_runs_and_recall_chart(client, desk, fast_config_file):
    assert "평가 결과가 없습니다" in client.get("/evaluation").text
    out = desk.settings.runs_dir / "fixture-run"
    done = CliRunner().invoke(
        cli, ["evaluate", "-d", str(FIXTURE_REQUESTS), "-C", str(fast_config_file), "--out", str(out)]
    )
    assert done.exit_code == 0, done.output
    page = client.get("/evaluation").text
    assert "fixture-run" in page and "hit@1" in page and "<svg" in page
    summary = json.loads((out / "summary.json").read_text())
    assert page.count('class="track"') == len(summary["per_institute"]) > 0
    for inst, v in summary["per_institute"].items():
        name = desk.catalog.institute(inst).name_ko
        assert f"<title>{name} ({inst}): {v['recall@3']:.2f} (n={v['n']})</title>" in page

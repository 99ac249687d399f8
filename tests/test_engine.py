"""The matcher end to end on the fixture catalog (cheap encoder) and the `match` CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from matcher.cli.app import app
from matcher.schema import Request

runner = CliRunner()


def test_match_ranks_the_right_institute_with_evidence(fast_matcher):
    result = fast_matcher.match("차량용 ECU가 완성차 EMC 시험에서 불합격했습니다. 대책이 필요합니다.")
    top = result.recommendations[0]
    assert top.institutes == ("katech",) and top.kind == "single"
    assert top.evidence and all(e.institute == "katech" for e in top.evidence)
    assert {e.kind for e in top.evidence} <= {"staff", "technology", "equipment"}
    assert any("EMC" in e.title for e in top.evidence)


def test_batch_equals_one_at_a_time(fast_matcher):
    texts = ["세라믹 링 플라즈마 식각 내구성", "혈압계 전기안전 시험성적서", "배터리 충방전 수명 저하"]
    one = [fast_matcher.match(t).ranked_institutes() for t in texts]
    many = [
        r.ranked_institutes()
        for r in fast_matcher.match_many(
            [Request(id=str(i), text=t) for i, t in enumerate(texts)], batch_size=2
        )
    ]
    assert one == many


def test_match_json_shape(fast_config_file):
    result = runner.invoke(
        app, ["match", "알루미늄 다이캐스팅 기공 불량", "--json", "-C", str(fast_config_file)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"request", "abstained", "recommendations"}
    rec = data["recommendations"][0]
    assert set(rec) >= {"rank", "institutes", "names", "score", "kind", "evidence"}
    assert set(rec["evidence"][0]) == {"institute", "capability_id", "kind", "title", "text", "score", "need"}
    assert rec["institutes"] == ["kims"] and rec["names"] == ["한국재료연구원"]


def test_empty_and_whitespace_input_is_a_clear_error(fast_config_file):
    for text in ("", "   \n "):
        result = runner.invoke(app, ["match", text, "-C", str(fast_config_file)])
        assert result.exit_code == 2 and "비어" in result.output and "Traceback" not in result.output


def test_very_long_and_non_korean_input(fast_config_file):
    long = "알루미늄 주조 기공 불량 개선이 필요합니다. " * 800  # ~20,000+ characters
    result = runner.invoke(app, ["match", long, "--json", "-C", str(fast_config_file)])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["recommendations"][0]["institutes"][0] == "kims"
    result = runner.invoke(
        app, ["match", "EMC test failure of automotive ECU", "--json", "-C", str(fast_config_file)]
    )
    assert result.exit_code == 0 and json.loads(result.stdout)["recommendations"]


def test_missing_config_file_is_input_error():
    result = runner.invoke(app, ["match", "EMC", "-C", "no-such.toml"])
    assert result.exit_code == 2 and "no-such.toml" in result.output


def test_joint_recommendation_for_two_field_request(fast_matcher):
    cfg = fast_matcher.config.replace(joint_margin=0.02, joint_penalty=0.0, aggregation="max")
    result = fast_matcher.with_config(cfg).match(
        "식각 장비용 이트리아 세라믹 부품이 플라즈마에 빨리 깎입니다. "
        "그리고 전기차 구동모터 효율을 다이나모로 평가받고 싶습니다."
    )
    joint = [r for r in result.recommendations if r.kind == "joint"]
    assert joint and set(joint[0].institutes) == {"kicet", "katech"}
    assert {c.institute for c in joint[0].covers} == {"kicet", "katech"}


def test_a_slow_one_shot_match_suggests_the_desk(fast_config_file, monkeypatch):
    monkeypatch.setattr("matcher.cli.engine_cmd.SERVE_HINT_AFTER_S", 0.0)
    text = "차량용 ECU EMC 시험 불합격"
    shown = runner.invoke(app, ["match", text, "-C", str(fast_config_file)])
    assert shown.exit_code == 0 and "matcher serve" in shown.stderr
    for flags in (["--json"], ["--local"]):  # a script reads JSON; --local chose not to use a desk
        quiet = runner.invoke(app, ["match", text, "-C", str(fast_config_file), *flags])
        assert quiet.exit_code == 0 and "matcher serve" not in quiet.stderr

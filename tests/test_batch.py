"""`matcher batch`: bad rows, resume after a kill, CSV and JSONL, the CLI's exit codes and summary."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matcher.assign import read_cases
from matcher.batch import (
    BatchSummary,
    count_rows,
    csv_columns,
    errors_path,
    exclusive,
    iter_rows,
    recover_output,
    run_batch,
)
from matcher.cli.app import app
from matcher.cli.batch_cmd import ProgressReporter
from matcher.problems import InputError
from matcher.schema import Request
from matcher.threads import auto_threads
from tests.conftest import FIXTURE_REQUESTS, ROOT

REQUESTS = [json.loads(line) for line in FIXTURE_REQUESTS.read_text(encoding="utf-8").splitlines()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def run(matcher, inp: Path, out: Path, **kw) -> BatchSummary:
    kw.setdefault("top", matcher.config.top)
    kw.setdefault("max_text_chars", matcher.config.max_text_chars)
    return run_batch(lambda reqs: matcher.match_many(reqs, 4), inp, out, **kw)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def without_latency(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "latency_ms"} for r in rows]


def test_output_lines_are_match_results(fast_matcher, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", REQUESTS[:5])
    out = tmp_path / "out.jsonl"
    summary = run(fast_matcher, inp, out)
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [r["id"] for r in REQUESTS[:5]]
    expected = fast_matcher.match_batch([Request.model_validate(r) for r in REQUESTS[:5]])
    assert without_latency(rows) == without_latency([e.to_dict() for e in expected])
    assert (summary.counts.done, summary.counts.skipped, summary.counts.errors) == (5, 0, 0)
    assert not errors_path(out).exists()


def test_each_bad_row_goes_to_errors_with_line_and_reason(fast_matcher, tmp_path):
    good = REQUESTS[:3]
    lines = [
        json.dumps(good[0], ensure_ascii=False),  # 1 good
        '{"id": "broken", "text": ',  # 2 invalid JSON
        json.dumps({"text": "아이디가 없는 요청입니다. 금형 코팅 문의"}, ensure_ascii=False),  # 3 missing id
        json.dumps({"id": "no-text", "title": "제목만"}, ensure_ascii=False),  # 4 missing text
        json.dumps({"id": good[0]["id"], "text": "같은 아이디"}, ensure_ascii=False),  # 5 duplicate
        json.dumps({"id": "long", "text": "가" * 150}, ensure_ascii=False),  # 6 over max_text_chars
        "",  # 7 blank: ignored
        "[1, 2]",  # 8 not an object
        json.dumps(good[1], ensure_ascii=False),  # 9 good
        json.dumps({"id": "blank-text", "text": "   "}, ensure_ascii=False),  # 10 empty text
        json.dumps(good[2], ensure_ascii=False),  # 11 good
    ]
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    summary = run(fast_matcher, inp, out, max_text_chars=100)

    assert [r["id"] for r in read_jsonl(out)] == [g["id"] for g in good]
    errors = read_jsonl(errors_path(out))
    assert all(set(e) == {"line", "id", "reason"} for e in errors)
    by_line = {e["line"]: e for e in errors}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 8, 10]
    assert by_line[2]["reason"].startswith("invalid JSON") and by_line[2]["id"] is None
    assert by_line[3]["reason"] == "missing id"
    assert by_line[4] == {"line": 4, "id": "no-text", "reason": "missing text"}
    assert by_line[5]["id"] == good[0]["id"] and "duplicate id (first on line 1)" in by_line[5]["reason"]
    assert by_line[6]["id"] == "long" and "too long" in by_line[6]["reason"]
    assert by_line[8]["reason"] == "expected a JSON object"
    assert by_line[10]["reason"] == "missing text"
    c = summary.counts
    assert (c.done, c.skipped, c.errors) == (3, 0, 7)
    assert summary.total == 10


def test_resume_after_kill_equals_one_uninterrupted_run(fast_matcher, tmp_path):
    rows = [*REQUESTS, {"id": REQUESTS[0]["id"], "text": "중복"}, {"id": "x"}]
    inp = write_jsonl(tmp_path / "all.jsonl", rows)
    half = write_jsonl(tmp_path / "half.jsonl", rows[:6])

    once = tmp_path / "once.jsonl"
    run(fast_matcher, inp, once)

    resumed = tmp_path / "resumed.jsonl"
    run(fast_matcher, half, resumed)
    torn = json.dumps(read_jsonl(once)[6], ensure_ascii=False)[:57].encode()
    with open(resumed, "ab") as fh:  # what kill -9 in the middle of a write leaves
        fh.write(torn)
    summary = run(fast_matcher, inp, resumed)

    assert resumed.read_bytes().endswith(b"\n")
    assert without_latency(read_jsonl(resumed)) == without_latency(read_jsonl(once))
    assert read_jsonl(errors_path(resumed)) == read_jsonl(errors_path(once))
    c = summary.counts
    assert (c.done, c.skipped, c.errors) == (len(REQUESTS) - 6, 6, 2)

    again = run(fast_matcher, inp, resumed)  # nothing left to do
    assert (again.counts.done, again.counts.skipped) == (0, len(REQUESTS))
    assert len(read_jsonl(resumed)) == len(REQUESTS)


def test_stop_finishes_the_current_line_and_resumes(fast_matcher, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", REQUESTS)
    out = tmp_path / "out.jsonl"
    written: list[int] = []
    summary = run(
        fast_matcher,
        inp,
        out,
        progress=lambda s: written.append(s.counts.done),
        should_stop=lambda: len(written) >= 3,
    )
    assert summary.interrupted and summary.counts.done == 3
    assert len(read_jsonl(out)) == 3
    rest = run(fast_matcher, inp, out)
    assert not rest.interrupted and (rest.counts.done, rest.counts.skipped) == (len(REQUESTS) - 3, 3)
    assert [r["id"] for r in read_jsonl(out)] == [r["id"] for r in REQUESTS]


def test_recover_output_truncates_only_a_torn_tail(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "req', encoding="utf-8")
    assert recover_output(out, "jsonl", 5) == {"a", "b"}
    assert out.read_text(encoding="utf-8") == '{"id": "a"}\n{"id": "b"}\n'

    out.write_text('{"id": "a"}\nnot json\n{"id": "c"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"out\.jsonl:2: unreadable"):
        recover_output(out, "jsonl", 5)
    assert recover_output(tmp_path / "missing.jsonl", "jsonl", 5) == set()


def test_csv_in_and_out_with_custom_columns_and_resume(fast_matcher, tmp_path):
    inp = tmp_path / "backlog.csv"
    with open(inp, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["번호", "내용", "industry", "submitted_at"])
        w.writerow(["c1", REQUESTS[0]["text"], "자동차부품", ""])
        w.writerow(["c2", REQUESTS[1]["text"] + "\n두 번째 줄: 시험 일정도 알려 주세요.", "", "2024-05-01"])
        w.writerow(["", "아이디 없음", "", ""])
        w.writerow(["c3", REQUESTS[2]["text"], "", "", "extra"])
        w.writerow(["c4", REQUESTS[3]["text"], "", ""])
    assert count_rows(inp) == 5
    out = tmp_path / "out.csv"
    summary = run(fast_matcher, inp, out, top=3, id_column="번호", text_column="내용")
    assert (summary.counts.done, summary.counts.errors) == (3, 2)
    errors = read_jsonl(errors_path(out))
    assert [(e["line"], e["reason"]) for e in errors] == [
        (5, "missing id"),
        (6, "row has 5 fields, the header has 4"),
    ]
    with open(out, encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == csv_columns(3)
    assert [r["id"] for r in table] == ["c1", "c2", "c4"]
    assert "두 번째 줄" in table[1]["request"]
    assert table[0]["rank1_institutes"] and float(table[0]["rank1_score"]) > 0

    # A torn CSV record (here cut inside a quoted multi-line field) is truncated on resume.
    full = out.read_bytes()
    cut = full.index("두 번째 줄".encode())
    out.write_bytes(full[:cut])
    again = run(fast_matcher, inp, out, top=3, id_column="번호", text_column="내용")
    assert (again.counts.done, again.counts.skipped) == (2, 1)
    assert out.read_bytes().count(b"\n") == full.count(b"\n")
    cases = list(read_cases(out, "csv", 3))
    assert [c.id for c in cases] == ["c1", "c2", "c4"] and cases[0].options[0].rank == 1


def test_csv_header_and_top_mismatch_are_input_errors(fast_matcher, tmp_path):
    inp = tmp_path / "in.csv"
    inp.write_text("key,body\n1,hello\n", encoding="utf-8")
    with pytest.raises(InputError, match="no column 'id', 'text'"):
        iter_rows(inp)
    good = tmp_path / "good.csv"
    good.write_text(f"id,text\n1,{REQUESTS[0]['text']}\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    run(fast_matcher, good, out, top=3)
    with pytest.raises(InputError, match="other columns"):
        run(fast_matcher, good, out, top=2)


def test_jsonl_input_to_csv_output_matches_jsonl_output(fast_matcher, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", REQUESTS[:4])
    a, b = tmp_path / "a.jsonl", tmp_path / "b.csv"
    run(fast_matcher, inp, a)
    run(fast_matcher, inp, b)
    assert list(read_cases(a, "jsonl", 5)) == list(read_cases(b, "csv", 5))


def test_progress_logs_plain_lines_when_not_a_terminal(capsys):
    reporter = ProgressReporter(interval=0)
    summary = BatchSummary("in", "out", total=10, seconds=2.0)
    summary.counts.done, summary.counts.skipped = 4, 2
    reporter(summary)
    reporter.close()
    assert "처리 6/10 (2.0 건/s, 남은 시간 2초)" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_json_summary_and_exit_codes(fast_config_file, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", REQUESTS[:4])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["batch", str(inp), "--out", str(out), "-C", str(fast_config_file), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    fields = {"input", "output", "done", "skipped", "errors", "abstained", "seconds", "rate", "query_cache"}
    assert set(summary) == fields
    assert (summary["done"], summary["skipped"], summary["errors"]) == (4, 0, 0)

    with open(inp, "a", encoding="utf-8") as fh:
        fh.write("{oops\n")
        fh.write(json.dumps(REQUESTS[5], ensure_ascii=False) + "\n")
    result = runner.invoke(
        app, ["batch", str(inp), "--out", str(out), "-C", str(fast_config_file), "--json", "--top", "2"]
    )
    assert result.exit_code == 2, result.output
    summary = json.loads(result.stdout)
    assert (summary["done"], summary["skipped"], summary["errors"]) == (1, 4, 1)
    rows = read_jsonl(out)
    assert len(rows) == 5 and len(rows[-1]["recommendations"]) <= 2


def test_cli_human_output_and_bad_options(fast_config_file, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", REQUESTS[:2])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["batch", str(inp), "--out", str(out), "-C", str(fast_config_file)])
    assert result.exit_code == 0, result.output
    assert "완료 2건" in result.stdout and "Traceback" not in result.output

    missing = runner.invoke(app, ["batch", str(tmp_path / "nope.jsonl"), "--out", str(out)])
    assert missing.exit_code == 2
    no_capacity = runner.invoke(
        app, ["batch", str(inp), "--out", str(out), "-C", str(fast_config_file), "--assign"]
    )
    assert no_capacity.exit_code == 2
    cap = tmp_path / "cap.csv"
    cap.write_text("institute,capacity\n없는기관,3\nkims,-1\n", encoding="utf-8")
    bad_cap = runner.invoke(
        app, ["batch", str(inp), "--out", str(out), "-C", str(fast_config_file), "--capacity", str(cap)]
    )
    assert bad_cap.exit_code == 2 and "Traceback" not in bad_cap.output
    assert "없는기관" in bad_cap.output


def test_cli_assign_writes_assignment_within_capacity(fast_config_file, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", REQUESTS)
    out = tmp_path / "out.jsonl"
    cap = tmp_path / "cap.csv"
    cap.write_text(
        "institute,capacity\nKIMS,1\n한국자동차연구원,2\nketi,2\nkicet,1\nktl,2\n", encoding="utf-8"
    )
    args = ["batch", str(inp), "--out", str(out), "-C", str(fast_config_file), "--capacity", str(cap)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["assignment"]
    lines = read_jsonl(Path(f"{out}.assignment.jsonl"))
    assert [line["id"] for line in lines] == [r["id"] for r in REQUESTS]
    load: dict[str, int] = {}
    for line in lines:
        for inst in line["institutes"]:
            load[inst] = load.get(inst, 0) + 1
    caps = {"kims": 1, "katech": 2, "keti": 2, "kicet": 1, "ktl": 2}
    assert all(load.get(i, 0) <= c for i, c in caps.items())
    assert report["total_score"] <= report["top1_total_score"]
    assert len(report["unassigned"]) == sum(1 for line in lines if line["rank"] is None)
    # A resumed run (nothing left to match) still assigns over the whole output.
    again = runner.invoke(app, [*args, "--json"])
    assert json.loads(again.stdout)["assignment"]["total_score"] == report["total_score"]


@pytest.mark.slow
def test_bench_smoke():
    out = subprocess.run(
        [sys.executable, "bench/batch.py", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "smoke ok" in out.stdout


def test_a_second_concurrent_run_on_the_same_output_is_refused(fast_matcher, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", REQUESTS[:2])
    out = tmp_path / "out.jsonl"
    with exclusive(out), pytest.raises(InputError, match="another `matcher batch` run"):
        run(fast_matcher, inp, out)
    assert run(fast_matcher, inp, out).counts.done == 2


def test_auto_threads_uses_only_idle_cores():
    assert auto_threads(2, 0.0) == 2
    assert auto_threads(2, 0.4) == 2
    assert auto_threads(2, 0.7) == 1  # another job holds most of a core: 2 threads would stall
    assert auto_threads(2, 6.0) == 1
    assert auto_threads(16, 3.2) == 13
    assert auto_threads(1, 0.0) == 1
    # Once matching, this process's own threads are part of the load and are not "other jobs".
    assert auto_threads(2, 1.9, own=2) == 2
    assert auto_threads(2, 2.9, own=2) == 1
    assert auto_threads(2, 1.0, own=1) == 2


def test_every_encoder_call_takes_its_threads_from_one_rule():
    from matcher.encoders.base import SMALL_BATCH
    from matcher.threads import encode_threads, torch_threads

    with torch_threads(2):  # inside a command that chose 2 threads for batches
        assert encode_threads(SMALL_BATCH, fallback=7) == 1  # a request and its needs: one thread
        assert encode_threads(SMALL_BATCH, fallback=7, small=3) == 3
        assert encode_threads(SMALL_BATCH + 1, fallback=7) == 2
    assert encode_threads(SMALL_BATCH + 1, fallback=7) == 7  # outside: the encoder's own fallback


def test_other_running_processes_are_read_from_proc_loadavg():
    from matcher.threads import runnable_others

    assert runnable_others("0.87 1.01 1.08 1/82 2004") == 0  # only the reader: idle, whatever the average
    assert runnable_others("1.90 1.20 0.80 3/90 2010") == 2
    assert runnable_others("garbage") is None


def test_auto_thread_batches_follow_the_load_and_give_the_same_results(fast_matcher, monkeypatch):
    import torch

    from matcher.threads import batches_with_auto_threads, torch_threads

    requests = [Request.model_validate(r) for r in REQUESTS][:12]
    monkeypatch.setattr("matcher.threads.os.cpu_count", lambda: 2)
    busy = iter([0, 5, 0, 5])  # idle, busy, idle, busy: processes running elsewhere, read per batch of 3
    monkeypatch.setattr("matcher.threads.running_elsewhere", lambda: next(busy, 0))
    seen, changes = [], []
    original = fast_matcher.match_batch

    def spy(batch):
        seen.append(torch.get_num_threads())
        return original(batch)

    monkeypatch.setattr(fast_matcher, "match_batch", spy)
    with torch_threads(1):  # the command's context: the batch and torch counts are restored after it
        auto = list(batches_with_auto_threads(fast_matcher, 3, lambda a, b: changes.append((a, b)))(requests))
    assert seen == [2, 1, 2, 1][: len(seen)] and len(seen) == -(-len(requests) // 3)
    assert changes == [(1, 2), (2, 1), (1, 2), (2, 1)][: len(seen)]
    fixed = list(original(requests))
    assert without_latency([r.to_dict() for r in auto]) == without_latency([r.to_dict() for r in fixed])

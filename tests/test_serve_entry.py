"""Which `matcher` command lines the desk fast path may answer; everything else goes to the full CLI."""

from __future__ import annotations

import pytest

from matcher.cli.entry import _parse, fast_match


@pytest.mark.parametrize(
    "argv",
    [
        ["match", "--json", "텍스트"],
        ["match", "텍스트", "--json", "-k", "3", "-C", "x.toml"],
        ["match", "--json", "--top=2", "--config=x.toml", "--server", "http://127.0.0.1:1", "텍스트"],
        ["match", "--json", "-f", "req.txt"],
    ],
)
def test_plain_json_calls_qualify(argv):
    assert _parse(argv) is not None


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["batch", "x.jsonl", "--json"],
        ["match", "텍스트"],  # the table: full CLI
        ["match", "--json", "--local", "텍스트"],
        ["match", "--json", "--set", "joint=false", "텍스트"],
        ["match", "--json", "--help"],
        ["match", "--json", "-k", "0", "텍스트"],
        ["match", "--json", "-k", "many", "텍스트"],
        ["match", "--json", "-k"],
        ["match", "--json", "둘", "셋"],
    ],
)
def test_everything_else_goes_to_the_full_cli(argv):
    assert _parse(argv) is None


def test_no_desk_means_no_answer(tmp_path, fast_config_file, capsys):
    assert not fast_match(["match", "--json", "-C", str(fast_config_file), "다이캐스팅 기공"])
    assert not fast_match(["match", "--json", "-C", str(fast_config_file), "   "])
    assert not fast_match(["match", "--json", "-f", str(tmp_path / "missing.txt")])
    assert not fast_match(
        ["match", "--json", "-C", str(fast_config_file), "--server", "http://127.0.0.1:9", "x"]
    )
    assert capsys.readouterr().out == ""


def test_kiwi_is_started_early_only_for_a_match_run_here_with_bm25(fast_config_file):
    from matcher.cli.entry import needs_kiwi_soon

    config = str(fast_config_file)  # hashing + BM25
    assert needs_kiwi_soon(["match", "텍스트"])  # the default preset has BM25
    assert needs_kiwi_soon(["match", "--local", "-C", config, "텍스트"])
    assert needs_kiwi_soon(["match", "--config=" + config, "--json", "텍스트"])
    assert not needs_kiwi_soon(["match", "-C", "dense", "텍스트"])  # e5 alone
    assert not needs_kiwi_soon(["match", "-C", config, "--set", 'retrievers=["hashing"]', "텍스트"])
    assert needs_kiwi_soon(["match", "-C", "dense", "--set", 'retrievers=["e5","bm25"]', "텍스트"])
    assert not needs_kiwi_soon(["match", "--help"])
    assert not needs_kiwi_soon(["match", "--server", "http://127.0.0.1:9", "텍스트"])
    assert not needs_kiwi_soon(["match", "-C", "no-such.toml", "텍스트"])  # the CLI reports it
    assert not needs_kiwi_soon(["batch", "cases.jsonl"])
    assert not needs_kiwi_soon([])

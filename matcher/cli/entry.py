"""The `matcher` entry point: `matcher match --json` answered by a running desk before the full CLI loads.

Importing every command (torch, FAISS, scikit-learn, kiwi) costs seconds; a desk answers in
milliseconds. So when the command line is a plain `match ... --json` (text or --file, optional --top
and --config) and a desk started from the same config text is up (its server file says so), it is
asked here with only the standard library loaded (not even pydantic), and its JSON printed as `matcher
match --json` prints it. Every other
case — another option, an empty or over-long text, no desk, a desk error — goes to the full CLI
unchanged, which reports it in the one place that does.

A `match` that will run in this process forks its slowest query encoder's worker here, before the
full CLI is imported (`prefetch.start_spare`): kiwi's two seconds of loading then overlap the import.
"""

from __future__ import annotations

import sys


def _parse(argv: list[str]) -> dict | None:
    """The options of a plain `match --json` call, or None when the full CLI must handle it."""
    if not argv or argv[0] != "match":
        return None
    opts: dict = {"json": False, "top": None, "config": None, "server": None, "file": None, "text": None}
    names = {"--top": "top", "-k": "top", "--config": "config", "-C": "config", "--server": "server"}
    names |= {"--file": "file", "-f": "file"}
    rest = argv[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        key, value = arg, None
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
        if key == "--json" and value is None:
            opts["json"] = True
        elif key in names:
            if value is None:
                if i + 1 >= len(rest):
                    return None
                i += 1
                value = rest[i]
            opts[names[key]] = value
        elif arg.startswith("-") and arg != "-":
            return None  # --local, --set, --help, ...: the full CLI
        elif opts["text"] is None:
            opts["text"] = arg
        else:
            return None
        i += 1
    if not opts["json"]:
        return None
    if opts["top"] is not None:
        if not opts["top"].isdigit() or int(opts["top"]) < 1:
            return None
        opts["top"] = int(opts["top"])
    return opts


def _read_text(opts: dict) -> str | None:
    if opts["file"] is not None:
        if opts["text"] is not None:
            return None
        try:
            with open(opts["file"], encoding="utf-8") as fh:
                return fh.read()
        except (OSError, UnicodeDecodeError):
            return None
    if opts["text"] in (None, "-"):
        return None  # stdin: the full CLI reads it (it may be a terminal)
    return opts["text"]


def _read_config(config: str | None) -> tuple[str, dict] | None:
    """The TOML text and its table for a `--config` value (None: no such preset or file, or bad TOML)."""
    import tomllib

    from matcher.config_source import config_text

    found = config_text(config)
    if found is None:
        return None
    try:
        return found[1], tomllib.loads(found[1])
    except tomllib.TOMLDecodeError:
        return None


def _running_desk(text: str, table: dict):
    """The desk started from this config text, if one is up (standard library only)."""
    from matcher.config_source import DEFAULT_MODEL_DIR, source_digest
    from matcher.serve.discovery import find_server_for_source

    return find_server_for_source(str(table.get("model_dir", DEFAULT_MODEL_DIR)), source_digest(text))


def needs_kiwi_soon(argv: list[str]) -> bool:
    """True for a `match` that will run in this process with BM25 (kiwi) among its retrievers: not
    help, not a named `--server`, not a running desk for its config that the CLI will ask instead
    (without `--local`), not a config whose retrievers leave BM25 out. Standard library only."""
    if not argv or argv[0] != "match":
        return False
    config, retrievers, local = None, None, False
    rest = argv[1:]
    for i, arg in enumerate(rest):
        key, _, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if key in ("--help", "-h", "--server"):
            return False
        if key == "--local":
            local = True
        elif key in ("--config", "-C", "--set"):
            value = value or (rest[i + 1] if i + 1 < len(rest) else "")
            if key != "--set":
                config = value
            elif value.startswith("retrievers="):
                retrievers = value
    found = _read_config(config)
    if found is None or (not local and _running_desk(*found) is not None):
        return False
    if retrievers is None:
        retrievers = str(found[1].get("retrievers", "bm25"))  # the default has it
    return "bm25" in retrievers


def fast_match(argv: list[str]) -> bool:
    """True when a running desk answered (and its JSON was printed)."""
    opts = _parse(argv)
    if opts is None:
        return False
    text = _read_text(opts)
    if text is None or not text.strip():
        return False
    import os

    from matcher.serve.discovery import DeskRejected, DeskUnavailable, match_via_desk

    url, token = opts["server"], os.environ.get("MATCHER_TOKEN")
    if url is not None:
        return False  # a named desk: the full CLI checks the config and reports errors
    found = _read_config(opts["config"])
    info = None if found is None else _running_desk(*found)
    if info is None or info.max_text_chars is None or len(text) > info.max_text_chars:
        return False
    url, token = info.url, info.token or token
    try:
        data = match_via_desk(url, text, top=opts["top"], token=token)
    except (DeskUnavailable, DeskRejected):
        return False
    import json

    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    return True


def main() -> None:
    argv = sys.argv[1:]
    if fast_match(argv):
        return
    one_shot = needs_kiwi_soon(argv)
    if one_shot:  # kiwi starts loading now, while the CLI imports (`prefetch.start_spare`)
        from matcher import prefetch

        prefetch.start_spare()
    from matcher.cli.app import main as full

    try:
        full()
    except SystemExit as done:
        if one_shot and done.code in (None, 0):
            quick_exit()
        raise


def quick_exit() -> None:
    """End a successful one-shot match without tearing down its heap (the catalog, the indexes):
    ~0.15–0.2 s of a cold `matcher match` went to freeing objects the OS reclaims anyway. Output is
    flushed first; the match's workers have all been joined, and it leaves no temporary files."""
    import os
    from contextlib import suppress

    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a reader that went away (`| head`), a closed stream
            stream.flush()
    os._exit(0)

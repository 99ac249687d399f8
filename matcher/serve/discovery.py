"""How `matcher match` finds a running desk: a small JSON file the server writes under `model_dir`.

The file (`<model_dir>/desk.json`, mode 0600 because it may hold the access token) names the URL, the
process id and a fingerprint of the server's config. The CLI uses a server only when the process is
alive and the fingerprint equals its own config's (ignoring `top`, which each call sends), so an answer
through the desk is the answer the CLI would compute itself. Kept free of heavy imports: the CLI reads
it before deciding whether to load any model.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not at run time: `matcher.cli.entry` reads the file before pydantic is imported
    from matcher.config import MatcherConfig

SERVER_FILE = "desk.json"


def config_fingerprint(config: MatcherConfig) -> str:
    """A hash of every knob that changes a result, except `top` (sent with each request)."""
    text = config.replace(top=1).to_toml()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def server_file(config: MatcherConfig) -> Path:
    return Path(config.model_dir) / SERVER_FILE


@dataclass(frozen=True)
class ServerInfo:
    url: str
    pid: int
    fingerprint: str
    """`config_fingerprint` of the served config (the full CLI compares its loaded config)."""
    token: str | None = None
    source_digest: str | None = None
    """`config_source.source_digest` of the served config's TOML text (the fast path compares it)."""
    max_text_chars: int | None = None


def write_server_file(config: MatcherConfig, info: ServerInfo) -> Path:
    path = server_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(asdict(info), fh)
    os.replace(tmp, path)
    return path


def remove_server_file(config: MatcherConfig, pid: int) -> None:
    """Remove the file if it is still ours (another desk may have started since)."""
    info = read_server_file(config)
    if info is not None and info.pid == pid:
        server_file(config).unlink(missing_ok=True)


def read_server_file(config: MatcherConfig) -> ServerInfo | None:
    return read_server_file_in(config.model_dir)


def read_server_file_in(model_dir: str | Path) -> ServerInfo | None:
    try:
        data = json.loads((Path(model_dir) / SERVER_FILE).read_text(encoding="utf-8"))
        return ServerInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_server(config: MatcherConfig) -> ServerInfo | None:
    """The running desk serving exactly this config, or None."""
    info = read_server_file(config)
    if info is None or not _alive(info.pid) or info.fingerprint != config_fingerprint(config):
        return None
    return info


def find_server_for_source(model_dir: str | Path, digest: str) -> ServerInfo | None:
    """The running desk whose config was read from the same TOML text, or None (no pydantic needed)."""
    info = read_server_file_in(model_dir)
    if info is None or not _alive(info.pid) or info.source_digest != digest:
        return None
    return info


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Never through a proxy from the environment: the desk is on this machine's loopback."""


class DeskUnavailable(Exception):
    """The desk could not answer (down, refused, timed out): the caller matches in-process."""


class DeskRejected(Exception):
    """The desk answered with an error about the request itself (e.g. 401, 413, 422)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def match_via_desk(
    url: str, text: str, *, top: int | None, token: str | None, timeout: float = 120.0
) -> dict:
    """POST /api/match and return its JSON object (the `matcher match --json` shape)."""
    body = json.dumps({"text": text, "top": top}, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url.rstrip("/") + "/api/match", body, headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", str(exc))
        except ValueError:
            message = str(exc)
        if exc.code >= 500:
            raise DeskUnavailable(f"{url}: {message}") from None
        raise DeskRejected(exc.code, message) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as exc:
        raise DeskUnavailable(f"{url}: {exc}") from None

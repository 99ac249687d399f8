"""Who may call the desk and how much they may send: loopback by default, a token otherwise, 1 MB bodies.

Both checks are plain ASGI middleware so they run before any route reads the body: a refused call
changes nothing.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_COOKIE = "matcher_token"
BODY_LIMIT = 1 << 20
"""1 MB: a request is a few sentences; anything near this is a mistake or an attack."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; every other address (and 0.0.0.0) needs a token."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def send_json(send: Send, status: int, data: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def too_large_message(limit: int) -> dict:
    mb = limit / (1 << 20)
    return {
        "error": f"요청 본문이 너무 큽니다 (최대 {mb:g} MB). Request body too large (limit {mb:g} MB).",
        "limit_bytes": limit,
    }


class BodyLimit:
    """Refuses bodies over `limit` bytes with 413 (by Content-Length, or while a chunked body streams).

    Paths in `larger` (prefix -> limit) get their own limit (backlog uploads).
    """

    def __init__(self, app: ASGIApp, limit: int = BODY_LIMIT, larger: dict[str, int] | None = None):
        self.app = app
        self.limit = limit
        self.larger = larger or {}

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.larger.items():
            if path.startswith(prefix):
                return limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = limit + 1
                if declared > limit:
                    await send_json(send, 413, too_large_message(limit))
                    return
        received = 0
        started = refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer now and tell the app the client left: whatever it does next is dropped.
                    refused = True
                    if not started:
                        await send_json(send, 413, too_large_message(limit))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:
                raise


class TokenAuth:
    """With a token, every call needs `Authorization: Bearer <token>` or the cookie that `?token=` sets.

    `GET any-page?token=T` (a link handed to staff) sets an HttpOnly, SameSite=Strict cookie and redirects
    to the same URL without the token, so the token does not stay in the address bar.
    """

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token.encode("utf-8")

    def _ok(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode("utf-8"), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:  # a malformed cookie header is just no cookie
            cookie = SimpleCookie()
        from_cookie = cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else None
        if self._ok(bearer) or self._ok(from_cookie):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = next((v for k, v in query if k == "token"), None)
        if scope["method"] == "GET" and self._ok(given):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            location = scope["path"] + (f"?{rest}" if rest else "")
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [
                        (b"location", location.encode("utf-8")),
                        (
                            b"set-cookie",
                            f"{TOKEN_COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/".encode("latin-1"),
                        ),
                        (b"content-length", b"0"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await send_json(
            send,
            401,
            {
                "error": "접근 토큰이 필요합니다 (Authorization: Bearer <token> 또는 ?token=). "
                "A valid access token is required."
            },
            [(b"www-authenticate", b"Bearer")],
        )


class SameOrigin:
    """Refuses cross-site writes and foreign Host names.

    A page on another site can make the officer's browser POST a form to the desk (no preflight for
    forms): a write whose `Origin` is not the desk itself gets 403. And on loopback, a `Host` header
    other than a loopback name (DNS rebinding: a foreign name resolving to 127.0.0.1) gets 403 when
    `allowed_hosts` is given.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: set[str] | None = None):
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        if self.allowed_hosts is not None and _hostname(host) not in self.allowed_hosts:
            await send_json(send, 403, {"error": f"허용되지 않은 호스트입니다 (host {host!r} not allowed)."})
            return
        origin = headers.get(b"origin")
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and origin is not None:
            netloc = origin.decode("latin-1").split("://", 1)[-1]
            if netloc != host:
                await send_json(
                    send,
                    403,
                    {"error": "다른 사이트에서 보낸 요청은 받지 않습니다 (cross-site request refused)."},
                )
                return
        await self.app(scope, receive, send)


def _hostname(host: str) -> str:
    """`127.0.0.1:8765` -> `127.0.0.1`, `[::1]:8765` -> `::1`."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def loopback_hosts(bound: str) -> set[str]:
    """Host names a browser may use for a desk bound to loopback address `bound`."""
    return {"localhost", "127.0.0.1", "::1", bound.strip("[]")}

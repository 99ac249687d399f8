"""Assembles the desk's FastAPI app: routes, static files, token and body-size checks, error handlers.

No response ever carries a traceback: unexpected errors are logged on the server and answered with a
short Korean/English message and an id to find the log line.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from matcher import __version__
from matcher.serve import api, pages
from matcher.serve.desk import Desk
from matcher.serve.security import BODY_LIMIT, BodyLimit, SameOrigin, TokenAuth

log = logging.getLogger("matcher.serve")


def create_app(
    desk: Desk,
    *,
    token: str | None = None,
    allowed_hosts: set[str] | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    """The desk's ASGI app over a loaded `Desk`; with `token`, every route requires it; with
    `allowed_hosts`, other Host headers are refused (`matcher serve` passes them on loopback).

    `on_shutdown` runs when the server shuts down gracefully: uvicorn re-raises SIGTERM after its
    shutdown, so code after `server.run()` never runs on a SIGTERM.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(
        lifespan=lifespan,
        docs_url=None,  # served below from the bundled Swagger UI: no CDN, the desk works offline
        redoc_url=None,
        title="matcher 기술애로 매칭 데스크",
        version=__version__,
        description="기술애로 요청을 해결할 공공연구기관(또는 융복합 팀)을 근거와 함께 추천합니다.",
    )
    app.state.desk = desk
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static")
    _add_docs(app)
    _add_error_handlers(app)
    # Outermost first at run time: the token is checked before the body is read or limited.
    app.add_middleware(
        BodyLimit,
        limit=BODY_LIMIT,
        larger={"/api/batch": desk.settings.max_upload_bytes, "/batch": desk.settings.max_upload_bytes},
    )
    if token:
        app.add_middleware(TokenAuth, token=token)
    app.add_middleware(SameOrigin, allowed_hosts=allowed_hosts)
    return app


def _add_docs(app: FastAPI) -> None:
    """OpenAPI docs at /docs with Swagger UI from the `swagger-ui-bundle-v2` package (offline)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} · API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/healthz", "/docs", "/openapi")) and "text/html" in (
        request.headers.get("accept", "")
    )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        return JSONResponse(
            {"error": "입력이 올바르지 않습니다 (invalid input)", "problems": problems}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "요청을 처리할 수 없습니다 (request failed)"
        if exc.status_code == 404 and message == "Not Found":
            message = "페이지가 없습니다 (not found)"
        if _wants_html(request):
            return pages.TEMPLATES.TemplateResponse(
                request,
                "error.html",
                {"nav": "", "status": exc.status_code, "message": message},
                status_code=exc.status_code,
            )
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        error_id = secrets.token_hex(4)
        log.exception("error %s on %s %s", error_id, request.method, request.url.path)
        message = f"서버 내부 오류입니다 (internal error {error_id}; see the server log)."
        if _wants_html(request):
            return pages.TEMPLATES.TemplateResponse(
                request, "error.html", {"nav": "", "status": 500, "message": message}, status_code=500
            )
        return JSONResponse({"error": message}, status_code=500)

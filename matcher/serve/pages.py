"""The Korean pages: the desk (request in, ranked institutes with evidence out, feedback buttons), the
catalog, batch jobs and evaluation runs. Server-rendered with Jinja2 (autoescaped); JS only posts
feedback and polls batch progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from matcher.feedback import Feedback
from matcher.problems import InputError
from matcher.schema import Request as MatchRequest
from matcher.serve.desk import Desk, desk_request_id
from matcher.serve.runs import HEADLINE, find_runs
from matcher.serve.views import kind_label, result_view

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.autoescape = True  # every template, whatever its extension
router = APIRouter(include_in_schema=False)

MAX_LINK_BYTES = 6000
"""A result link longer than this would not survive ticket systems and server header limits."""


def _desk(request: Request) -> Desk:
    return request.app.state.desk


def _render(request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, {"nav": name, **context}, status_code=status_code)


@router.get("/", response_class=HTMLResponse)
def home(request: Request):
    return _render(request, "desk.html", form={"text": "", "region": "", "company": "", "top": ""})


async def _match_page(request: Request, text: str, region: str, company: str, top: int | None):
    desk = _desk(request)
    form = {"text": text, "region": region, "company": company, "top": top or ""}
    if not text.strip():
        return _render(request, "desk.html", 422, form=form, error="요청 내용을 입력하세요.")
    request_id = desk_request_id(text)
    req = MatchRequest(id=request_id, text=text, region=region or None, company=company or None)
    result = await desk.match(req, top)
    view = result_view(result, desk.catalog, review_below=desk.settings.review_below, records=desk.records)
    params = {k: v for k, v in (("text", text), ("region", region), ("company", company)) if v}
    if top:
        params["top"] = str(top)
    link = "/match?" + urlencode(params)
    return _render(
        request,
        "desk.html",
        form=form,
        result=view,
        link=link if len(link.encode()) <= MAX_LINK_BYTES else None,
        feedback=_named(desk, desk.feedback_for(request_id)),
        institutes=[(i.id, i.name_ko) for i in desk.catalog.institutes],
    )


def _named(desk: Desk, feedback: Feedback | None) -> dict[str, list[str]] | None:
    """Stored verdicts with Korean institute names, for the page."""
    if feedback is None:
        return None
    name = {i.id: i.name_ko for i in desk.catalog.institutes}
    return {
        key: [name.get(i, i) for i in getattr(feedback, key)] for key in ("accepted", "rejected", "forwarded")
    }


@router.get("/match", response_class=HTMLResponse)
async def match_get(
    request: Request,
    text: str = "",
    region: str = "",
    company: str = "",
    top: Annotated[int | None, Query(ge=1, le=50)] = None,
):
    """The result page for a link from a ticket: /match?text=…"""
    return await _match_page(request, text, region, company, top)


@router.post("/match", response_class=HTMLResponse)
async def match_post(
    request: Request,
    text: Annotated[str, Form()] = "",
    region: Annotated[str, Form()] = "",
    company: Annotated[str, Form()] = "",
    top: Annotated[str, Form()] = "",
):
    top_n = int(top) if top.strip().isdigit() and 1 <= int(top) <= 50 else None
    return await _match_page(request, text, region, company, top_n)


@router.get("/catalog", response_class=HTMLResponse)
def catalog_page(request: Request, q: str = ""):
    """Institutes with their sites and profile; with `q`, the records whose text contains it."""
    catalog = _desk(request).catalog
    needle = q.strip().lower()
    counts = catalog.counts()
    records = []
    if needle:
        records = [c for c in catalog.capabilities if needle in (c.text() + " " + c.id).lower()][:200]
    owners = {r.institute for r in records}
    institutes = [
        i
        for i in catalog.institutes
        if not needle
        or i.id in owners
        or needle in " ".join([*i.names(), i.summary, *i.site_names()]).lower()
    ]
    return _render(
        request,
        "catalog.html",
        q=q,
        institutes=institutes,
        counts=counts,
        records=records,
        names={i.id: i.name_ko for i in catalog.institutes},
        kind_label=kind_label,
    )


@router.get("/catalog/{institute_id}", response_class=HTMLResponse)
def institute_page(request: Request, institute_id: str):
    catalog = _desk(request).catalog
    if institute_id not in catalog:
        raise HTTPException(404, "기관이 없습니다 (no such institute)")
    return _render(
        request,
        "institute.html",
        nav_override="catalog.html",
        inst=catalog.institute(institute_id),
        records=catalog.records_of(institute_id),
        kind_label=kind_label,
    )


@router.get("/batch", response_class=HTMLResponse)
def batch_page(request: Request, error: str = ""):
    return _render(request, "batch.html", jobs=_desk(request).jobs.all(), error=error)


@router.post("/batch")
async def batch_upload(request: Request, file: Annotated[UploadFile, File()]):
    """The form upload without JS: store, queue and come back to the list."""
    try:
        _desk(request).jobs.create(file.filename or "upload", await file.read())
    except InputError as exc:
        return _render(request, "batch.html", 422, jobs=_desk(request).jobs.all(), error=str(exc.problems[0]))
    return RedirectResponse("/batch", status_code=303)


@router.get("/evaluation", response_class=HTMLResponse)
def evaluation_page(request: Request):
    runs_dir = Path(_desk(request).settings.runs_dir)
    names = {i.id: i.name_ko for i in _desk(request).catalog.institutes}
    return _render(
        request,
        "evaluation.html",
        runs=find_runs(runs_dir),
        runs_dir=runs_dir,
        headline=HEADLINE,
        names=names,
    )

"""The JSON API: /healthz, /api/match, /api/feedback and /api/batch (OpenAPI at /docs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from matcher.problems import InputError, Problem
from matcher.schema import Request as MatchRequest
from matcher.serve.desk import Desk

router = APIRouter()


class MatchIn(BaseModel):
    """One request to match; `top` defaults to the server config's."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="요청 내용 (the company's difficulty, Korean).")
    region: str | None = Field(default=None, description="시/도, e.g. 경남.")
    company: str | None = None
    top: int | None = Field(default=None, ge=1, le=50)
    id: str = Field(default="request", min_length=1, description="Echoed as the result's `id`.")


class FeedbackIn(BaseModel):
    """Staff's decision about a request: institutes by id or name."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=200)
    text: str | None = Field(default=None, description="Required the first time a request gets feedback.")
    accepted: list[str] = Field(default_factory=list)
    rejected: list[str] = Field(default_factory=list)
    forwarded: list[str] = Field(default_factory=list)
    who: str | None = Field(default=None, max_length=100)
    note: str | None = Field(default=None, max_length=2000)


def desk_of(request: Request) -> Desk:
    return request.app.state.desk


def input_error(exc: InputError) -> JSONResponse:
    return JSONResponse(
        {
            "error": "입력이 올바르지 않습니다 (invalid input)",
            "problems": [p.to_dict() for p in exc.problems],
        },
        status_code=422,
    )


@router.get("/healthz", tags=["status"], summary="상태 (status and versions)")
def healthz(request: Request) -> dict:
    """Status, model, index and catalog versions, and how much micro-batching happened."""
    return desk_of(request).health()


@router.post("/api/match", tags=["match"], summary="요청 매칭 (match one request)")
async def api_match(body: MatchIn, request: Request) -> dict:
    """Exactly the `matcher match --json` object (docs/json-output.md)."""
    desk = desk_of(request)
    if not body.text.strip():
        return input_error(
            InputError([Problem("request", "요청 내용이 비어 있습니다 (empty request)", field="text")])
        )
    req = MatchRequest(id=body.id, text=body.text, region=body.region, company=body.company)
    result = await desk.match(req, body.top)
    return result.to_dict()


@router.post("/api/feedback", tags=["feedback"], summary="검토 기록 (record feedback)")
def api_feedback(body: FeedbackIn, request: Request):
    """Store accepted / rejected / forwarded institutes in the same SQLite file as `matcher feedback`."""
    desk = desk_of(request)
    try:
        fb, seq = desk.record_feedback(
            body.request_id,
            body.text,
            accepted=body.accepted,
            rejected=body.rejected,
            forwarded=body.forwarded,
            who=body.who,
            note=body.note,
        )
    except InputError as exc:
        return input_error(exc)
    return {
        "id": fb.request_id,
        "accepted": list(fb.accepted),
        "rejected": list(fb.rejected),
        "forwarded": list(fb.forwarded),
        "decision": seq,
    }


@router.post("/api/batch", tags=["batch"], status_code=202, summary="일괄 처리 등록 (upload a backlog)")
async def api_batch_create(request: Request, file: Annotated[UploadFile, File()]):
    """Upload a JSONL or CSV backlog (the `matcher batch` input formats); it runs in the background."""
    desk = desk_of(request)
    data = await file.read()
    try:
        job = desk.jobs.create(file.filename or "upload", data)
    except InputError as exc:
        return input_error(exc)
    return JSONResponse(job.to_dict(), status_code=202)


@router.get("/api/batch", tags=["batch"], summary="일괄 처리 목록 (list jobs)")
def api_batch_list(request: Request) -> dict:
    return {"jobs": [j.to_dict() for j in desk_of(request).jobs.all()]}


@router.get("/api/batch/{job_id}", tags=["batch"], summary="일괄 처리 상태 (one job)")
def api_batch_get(job_id: str, request: Request) -> dict:
    job = desk_of(request).jobs.get(job_id)
    if job is None:
        raise HTTPException(404, "작업이 없습니다 (no such batch job)")
    return job.to_dict()


@router.get("/api/batch/{job_id}/results", tags=["batch"], summary="결과 내려받기 (results JSONL)")
def api_batch_results(job_id: str, request: Request):
    """The results so far (JSONL, one `matcher match --json` object a line)."""
    return _download(request, job_id, "results")


@router.get("/api/batch/{job_id}/errors", tags=["batch"], summary="오류 내려받기 (errors JSONL)")
def api_batch_errors(job_id: str, request: Request):
    """The bad rows ({"line", "id", "reason"} a line); empty when there were none."""
    return _download(request, job_id, "errors")


def _download(request: Request, job_id: str, which: str):
    jobs = desk_of(request).jobs
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, "작업이 없습니다 (no such batch job)")
    path = jobs.output_path(job) if which == "results" else jobs.errors_path(job)
    stem = job.filename.rsplit(".", 1)[0]
    name = f"{stem}.{which}.jsonl"
    if not path.is_file():
        return Response(b"", media_type="application/x-ndjson", headers=_attachment(name))
    return FileResponse(path, media_type="application/x-ndjson", headers=_attachment(name))


def _attachment(name: str) -> dict[str, str]:
    from urllib.parse import quote

    return {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}

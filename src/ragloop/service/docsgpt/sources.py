"""DocsGPT-compatible ingest routes: ``/api/upload``, ``/api/task_status``, ``/api/sources``,
``/api/combine``.

Uploads become ragloop ingest jobs; their states are reported the way DocsGPT reports its
Celery tasks, so its frontend and scripts can poll them unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import APIRouter, Query, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.exceptions import HTTPException

from ragloop.core.errors import InvalidInputError, RagloopError
from ragloop.core.storage.jobs import Job
from ragloop.ingest.loaders import file_document_id
from ragloop.service.auth import check_writer
from ragloop.service.common import authenticate, stage_uploads
from ragloop.service.docsgpt.shapes import user_error
from ragloop.service.ingest_jobs import safe_filename
from ragloop.service.state import AppState, get_state

router = APIRouter(tags=["docsgpt"])

#: Our job states as Celery task states (DocsGPT's ``/api/task_status`` vocabulary).
CELERY_STATES = {
    "queued": "PENDING",
    "running": "PROGRESS",
    "succeeded": "SUCCESS",
    "failed": "FAILURE",
    "cancelled": "REVOKED",
}
#: Corpus formats hold many documents per file; every other format is one document per file.
_CORPUS_FORMATS = frozenset({".json", ".jsonl"})

_UPLOAD_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "user": {"type": "string"},
                        "name": {"type": "string"},
                    },
                }
            }
        }
    }
}


def _source_id(state: AppState, job: Job, names: list[str], client: str | None) -> str:
    # DocsGPT answers with the new source's id. A one-document file's id is known now (a hash of
    # where the upload lands); for anything else the job id stands for the upload.
    if len(names) == 1 and Path(names[0]).suffix.lower() not in _CORPUS_FORMATS:
        return file_document_id(state.ingest.upload_path(client, names[0]))
    return job.id


@router.post("/api/upload", openapi_extra=_UPLOAD_BODY)
async def upload(request: Request) -> JSONResponse:
    """Multipart ``file`` (repeatable); ``user``, ``name`` and ``config`` are accepted and
    ignored. Ingest runs in the background: poll ``/api/task_status?task_id=``.

    A file with the same name as an earlier upload by the same client (API key, admin token,
    or anonymous) replaces that document; other clients' uploads of that name are their own.
    """
    try:
        state = get_state(request)
        s = state.settings
        # Starlette names its max_files in its message: the limit itself, not one more.
        form = await request.form(max_files=s.max_upload_files, max_fields=100)
        client = check_writer(state, request, form.get("api_key"))
        files = [f for f in form.getlist("file") if isinstance(f, StarletteUpload) and f.filename]
        if not files:
            raise InvalidInputError("Missing required fields or files (multipart field 'file')")
        # FastAPI's UploadFile only adds schema hooks to Starlette's, which the form holds.
        staged, names = await stage_uploads(state, cast("list[UploadFile]", files))
        job = state.ingest.submit(staged, names, client)
    except RagloopError as exc:
        return user_error(exc)
    except HTTPException as exc:  # a malformed multipart body, as Starlette reports it
        return user_error(InvalidInputError(str(exc.detail)))
    return JSONResponse(
        {"success": True, "task_id": job.id, "source_id": _source_id(state, job, names, client)}
    )


def task_result(state: AppState, job: Job) -> Any:
    """What Celery's ``result`` would hold for this job's state."""
    if job.state == "running":
        return {"current": round(job.progress * 100, 1), "message": job.message}
    if job.state == "failed":
        return job.message
    if job.state != "succeeded":
        return None
    files = list(job.params.get("files", []))
    # Relative to the uploads root: a client never learns where the server keeps files.
    return {
        "directory": str(job.params.get("client", "")),
        "formats": sorted({Path(f).suffix.lower() for f in files}),
        "name_job": files[0] if len(files) == 1 else f"{len(files)} files",
        "filename": files[0] if files else "",
        "user": "local",
        "limited": False,
        "report": job.result,
        "errors": job.errors,
    }


@router.get("/api/task_status")
async def task_status(
    request: Request, task_id: Annotated[str | None, Query(max_length=200)] = None
) -> JSONResponse:
    """``{"status": PENDING|PROGRESS|SUCCESS|FAILURE, "result": ...}`` for an upload's task."""
    try:
        state = get_state(request)
        authenticate(state, request, request.query_params.get("api_key"))
        if not task_id:
            raise InvalidInputError("Task ID is required")
        job = state.jobs.get(task_id)
    except RagloopError as exc:
        return user_error(exc)
    status = CELERY_STATES.get(job.state, "PROGRESS")
    return JSONResponse({"status": status, "result": task_result(state, job)})


@router.get("/api/sources")
async def sources(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> JSONResponse:
    """A ``Default`` entry (everything ingested), then one entry per document."""
    try:
        state = get_state(request)
        authenticate(state, request, request.query_params.get("api_key"))
        active = state.runtime.catalog.active_version()
        docs = state.runtime.catalog.list_documents(limit=limit, offset=offset)
    except RagloopError as exc:
        return user_error(exc)
    model = active.model_ref if active else state.settings.embedder
    out: list[dict[str, Any]] = [
        {
            "name": "Default",
            "date": "default",
            "model": model,
            "location": "remote",
            "tokens": "",
            "retriever": "classic",
        }
    ]
    for d in docs:
        out.append(
            {
                "id": d.id,
                "name": d.title or safe_filename(d.source),
                "date": _iso(d.updated_at),
                "model": model,
                "location": "local",
                "tokens": "",
                "retriever": "classic",
                "syncFrequency": "",
                "provider": None,
                "is_nested": False,
                "type": "file",
                "config": {},
                "ownership": "user",
                "team_access": None,
                "source": state.ingest.public_path(d.source),
                "chunks": d.n_chunks,
            }
        )
    return JSONResponse(out)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@router.get("/api/combine", response_class=RedirectResponse, status_code=301)
async def combine() -> RedirectResponse:
    """The pre-0.14 name of ``/api/sources``: a permanent redirect, as DocsGPT answers."""
    return RedirectResponse("/api/sources", status_code=301)

"""Admin routes of the learning loop: retrain, jobs, model versions, rollback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from ragloop.finetune.options import RetrainOptions
from ragloop.service.auth import require_admin
from ragloop.service.native.documents import job_out
from ragloop.service.schemas import ErrorOut, JobOut, ModelVersionOut
from ragloop.service.state import get_state

router = APIRouter(prefix="/admin", tags=["learning loop"], dependencies=[Depends(require_admin)])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 422)
}


@router.post("/retrain", status_code=202, response_model=JobOut, responses=ERRORS)
async def retrain(
    request: Request, options: Annotated[RetrainOptions | None, Body()] = None
) -> JobOut:
    """Start a retrain job (one at a time); poll ``/admin/jobs/{id}``."""
    state = get_state(request)
    job = await run_in_threadpool(state.retrain.start, options or RetrainOptions())
    return job_out(job)


@router.get("/jobs", response_model=list[JobOut], responses=ERRORS)
async def jobs(
    request: Request,
    kind: Annotated[str | None, Query(description="retrain | ingest")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[JobOut]:
    """Recent jobs, newest first."""
    return [job_out(j) for j in get_state(request).jobs.recent(kind, limit)]


@router.get("/jobs/{job_id}", response_model=JobOut, responses=ERRORS)
async def job(job_id: str, request: Request) -> JobOut:
    """One job: state, progress, loss, pair counts, gate scores, timings."""
    return job_out(get_state(request).jobs.get(job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=ERRORS)
async def cancel(job_id: str, request: Request) -> JobOut:
    """Cancel a running retrain job."""
    return job_out(get_state(request).retrain.cancel(job_id))


def version_out(request: Request) -> list[ModelVersionOut]:
    """Every model version with its status."""
    state = get_state(request)
    active = state.runtime.catalog.active_version()
    return [
        ModelVersionOut(
            version=v.version,
            status=v.status,
            active=active is not None and v.version == active.version,
            parent=v.parent,
            kind=str(v.info.get("kind", "base" if v.parent is None else "full")),
            collection=v.collection,
            created_at=v.created_at,
            gate=v.info.get("gate"),
        )
        for v in state.runtime.catalog.list_versions()
    ]


@router.get("/models", response_model=list[ModelVersionOut], responses=ERRORS)
async def models(request: Request) -> list[ModelVersionOut]:
    """Model versions, oldest first."""
    return version_out(request)


@router.post("/models/{version}/activate", response_model=list[ModelVersionOut], responses=ERRORS)
async def activate(version: str, request: Request) -> list[ModelVersionOut]:
    """Roll back or forward to a kept version (its collection is caught up first)."""
    state = get_state(request)
    await run_in_threadpool(state.retrain.promoter.activate, version)
    return version_out(request)

"""Every ``/admin`` route (Bearer ``RAGLOOP_ADMIN_TOKEN``): the query log and its misses, and
the learning loop's retrain, jobs, model versions and rollback."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from ragloop.core.storage.querylog import QueryRecord
from ragloop.finetune.options import RetrainOptions, gate_datasets_root
from ragloop.service.auth import require_admin
from ragloop.service.common import checked_json_body, job_out
from ragloop.service.schemas import ErrorOut, JobOut, ModelVersionOut, QueryLogOut, QueryPage
from ragloop.service.state import get_state

router = APIRouter(
    prefix="/admin", dependencies=[Depends(require_admin), Depends(checked_json_body)]
)
# The two groups keep their own OpenAPI tags and documented errors.
LOG_TAGS: list[str | Enum] = ["admin"]
LOOP_TAGS: list[str | Enum] = ["learning loop"]
LOG_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403)
}
LOOP_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 422)
}

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]
Since = Annotated[float | None, Query(description="Unix time, inclusive")]
Until = Annotated[float | None, Query(description="Unix time, exclusive")]


def _page(items: list[QueryRecord], total: int, limit: int, offset: int) -> QueryPage:
    return QueryPage(
        total=total,
        limit=limit,
        offset=offset,
        items=[QueryLogOut(**{k: getattr(r, k) for k in QueryLogOut.model_fields}) for r in items],
    )


@router.get("/misses", response_model=QueryPage, tags=LOG_TAGS, responses=LOG_ERRORS)
async def misses(
    request: Request,
    reason: Annotated[
        str | None, Query(description="low_score | no_answer | negative_feedback")
    ] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> QueryPage:
    """Missed queries, newest first, filtered by reason and time."""
    log = get_state(request).querylog
    items, total = log.find(
        misses_only=True, reason=reason, since=since, until=until, limit=limit, offset=offset
    )
    return _page(items, total, limit, offset)


@router.get("/queries", response_model=QueryPage, tags=LOG_TAGS, responses=LOG_ERRORS)
async def queries(
    request: Request,
    since: Since = None,
    until: Until = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> QueryPage:
    """All logged queries, newest first."""
    log = get_state(request).querylog
    items, total = log.find(since=since, until=until, limit=limit, offset=offset)
    return _page(items, total, limit, offset)


@router.post(
    "/retrain", status_code=202, response_model=JobOut, tags=LOOP_TAGS, responses=LOOP_ERRORS
)
async def retrain(
    request: Request, options: Annotated[RetrainOptions | None, Body()] = None
) -> JobOut:
    """Start a retrain job (one at a time); poll ``/admin/jobs/{id}``.

    ``gate_dataset`` and ``general_dataset`` name folders under RAGLOOP_GATE_DATASETS_ROOT.
    """
    state = get_state(request)
    confined = (options or RetrainOptions()).confined(gate_datasets_root(state.settings))
    job = await run_in_threadpool(state.retrain.start, confined)
    return job_out(job)


@router.get("/jobs", response_model=list[JobOut], tags=LOOP_TAGS, responses=LOOP_ERRORS)
async def jobs(
    request: Request,
    kind: Annotated[str | None, Query(description="retrain | ingest")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[JobOut]:
    """Recent jobs, newest first."""
    return [job_out(j) for j in get_state(request).jobs.recent(kind, limit)]


@router.get("/jobs/{job_id}", response_model=JobOut, tags=LOOP_TAGS, responses=LOOP_ERRORS)
async def job(job_id: str, request: Request) -> JobOut:
    """One job: state, progress, loss, pair counts, gate scores, timings."""
    return job_out(get_state(request).jobs.get(job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=LOOP_TAGS, responses=LOOP_ERRORS)
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


@router.get("/models", response_model=list[ModelVersionOut], tags=LOOP_TAGS, responses=LOOP_ERRORS)
async def models(request: Request) -> list[ModelVersionOut]:
    """Model versions, oldest first."""
    return version_out(request)


@router.post(
    "/models/{version}/activate",
    response_model=list[ModelVersionOut],
    tags=LOOP_TAGS,
    responses=LOOP_ERRORS,
)
async def activate(version: str, request: Request) -> list[ModelVersionOut]:
    """Roll back or forward to a kept version (its collection is caught up first)."""
    state = get_state(request)
    await run_in_threadpool(state.retrain.promoter.activate, version)
    return version_out(request)

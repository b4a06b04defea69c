"""Admin routes (Bearer ``RAGLOOP_ADMIN_TOKEN``): the query log and the misses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from ragloop.core.storage.querylog import QueryRecord
from ragloop.service.auth import require_admin
from ragloop.service.schemas import ErrorOut, QueryLogOut, QueryPage
from ragloop.service.state import get_state

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 403)}

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


@router.get("/misses", response_model=QueryPage, responses=ERRORS)
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


@router.get("/queries", response_model=QueryPage, responses=ERRORS)
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

"""Sign-in and sign-out, the overview, and the misses inbox (search, label, not answerable)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ragloop.core.errors import AuthError, InvalidInputError, NotFoundError
from ragloop.core.records import display_title
from ragloop.core.retriever import search
from ragloop.core.storage.querylog import MISS_REASONS, QueryRecord
from ragloop.service.console import session as sessions
from ragloop.service.console.charts import metric_plot, misses_chart
from ragloop.service.console.stats import NOT_ANSWERABLE, labels_of, mark_not_answerable, overview
from ragloop.service.console.web import (
    SECURITY_HEADERS,
    done,
    page,
    render_text,
    safe_next,
    signed_in,
    to_login,
    validation_error,
)
from ragloop.service.native.query import apply_feedback
from ragloop.service.schemas import FeedbackIn
from ragloop.service.state import AppState

router = APIRouter(include_in_schema=False)
#: Misses per inbox page, and passages a search shows (keys 1-9 mark them).
PAGE_SIZE = 50
SEARCH_K = 9
#: Characters of a passage the inbox shows.
PASSAGE_CHARS = 700


# ---- sign-in ---------------------------------------------------------------------------------


@router.get("/console/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form (a signed-in browser goes straight on)."""
    state, session = signed_in(request)
    if session is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_form(request, state, next, None, 200)


def _login_form(
    request: Request, state: AppState, next: str | None, error: str | None, status: int
) -> HTMLResponse:
    token = sessions.login_token(request)
    response = page(
        request,
        "login.html",
        None,
        status=status,
        login_csrf=token,
        next=safe_next(next),
        error=error,
        enabled=sessions.admin_enabled(state),
    )
    sessions.set_login_cookie(response, request, token)
    return response


@router.post("/console/login")
async def login(request: Request) -> Response:
    """Check the token, then start a session (cookie) and go on; an address that tries too
    often is refused for a while (429) before its attempt is even read."""
    state, _ = signed_in(request)
    wait = sessions.sign_in_wait(request)
    if wait:
        message = (
            f"too many sign-in attempts from this address: {sessions.SIGN_IN_PER_MINUTE} a "
            f"minute are allowed; try again in {wait} s"
        )
        refused = _login_form(request, state, None, message, 429)
        refused.headers["Retry-After"] = str(wait)
        return refused
    form = await request.form()
    sessions.check_login_csrf(request, _field(form.get("csrf")))
    next = _field(form.get("next"))
    try:
        value = sessions.sign_in(state, _field(form.get("token")) or "")
    except AuthError as exc:
        return _login_form(request, state, next, exc.message, exc.http_status)
    response = RedirectResponse(safe_next(next), status_code=303)
    sessions.set_session_cookie(response, request, value)
    return response


@router.post("/console/logout")
async def logout(request: Request) -> Response:
    """End the session (server side too) and clear the cookie."""
    state, session = signed_in(request)
    if session is None:
        return to_login(request)
    form = await request.form()
    sessions.check_csrf(session, request, _field(form.get("csrf")))
    await run_in_threadpool(sessions.sign_out, state, session)
    response = RedirectResponse("/console/login", status_code=303)
    sessions.clear_session_cookie(response, request)
    return response


def _field(value: object) -> str | None:
    return value if isinstance(value, str) else None


# ---- overview --------------------------------------------------------------------------------


@router.get("/console")
@router.get("/console/")
async def overview_page(request: Request) -> Response:
    """Documents, chunks, active version, misses per day by reason, labels, waiting pairs."""
    state, session = signed_in(request)
    if session is None:
        return to_login(request)
    catalog = state.runtime.catalog
    active = catalog.active_version()
    stats = await run_in_threadpool(
        overview,
        state.querylog,
        catalog.counts(),
        active.version if active else "",
        active.created_at if active else 0.0,
    )
    running = state.retrain.running()
    plot = metric_plot(catalog.list_versions())
    chart = misses_chart(stats.days, stats.per_day, stats.reasons)
    return page(
        request,
        "overview.html",
        session,
        stats=stats,
        running=running,
        plot=plot,
        misses=chart,
        title="Overview",
    )


# ---- the misses inbox ------------------------------------------------------------------------


def _date(value: str | None, what: str, end: bool = False) -> float | None:
    """A YYYY-MM-DD date (UTC) as unix time; ``end``: the end of that day."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInputError(f"{what} must be a date like 2025-01-31, not {value!r}") from None
    return day.timestamp() + (86400 if end else 0)


def _passages(state: AppState, ids: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """The chunks a query retrieved, numbered as its answer cited them."""
    known = state.runtime.catalog.chunks_for_hits([cid for cid, _ in ids])
    out = []
    for n, (cid, score) in enumerate(ids, 1):
        if cid not in known:
            out.append({"n": n, "chunk_id": cid, "title": "(deleted)", "text": "", "score": score})
            continue
        chunk, title, source = known[cid]
        out.append(
            {
                "n": n,
                "chunk_id": cid,
                "title": display_title(title, chunk.title),
                "source": source or "",
                "text": chunk.text[:PASSAGE_CHARS],
                "score": score,
            }
        )
    return out


def _search(state: AppState, text: str) -> list[dict[str, Any]]:
    """The live retriever's top passages for ``text`` (as serving retrieves)."""
    index = state.runtime.active_index()
    hits = search(index, state.runtime.store, state.runtime.catalog, text, k=SEARCH_K)
    return [
        {
            "n": n,
            "chunk_id": h.chunk.id,
            "title": h.document_title,
            "source": h.source,
            "text": h.chunk.text[:PASSAGE_CHARS],
            "score": h.score,
        }
        for n, h in enumerate(hits, 1)
    ]


@router.get("/console/misses")
async def misses_page(
    request: Request,
    reason: str | None = None,
    since: str | None = None,
    until: str | None = None,
    id: str | None = None,
    q: str | None = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> Response:
    """Misses newest first; the selected one with its answer, sources and a live search."""
    state, session = signed_in(request)
    if session is None:
        return to_login(request)
    filters = {"reason": reason or "", "since": since or "", "until": until or ""}
    error = None
    items: list[QueryRecord] = []
    total = 0
    try:
        items, total = state.querylog.find(
            misses_only=True,
            reason=reason or None,
            since=_date(since, "from"),
            until=_date(until, "to", end=True),
            limit=PAGE_SIZE,
            offset=offset,
        )
    except InvalidInputError as exc:
        error = exc.message
    labels = labels_of(state.querylog, [r.id for r in items])
    selected: QueryRecord | None = None
    if id:
        try:
            selected = state.querylog.get(id)
        except NotFoundError as exc:
            error = exc.message
    elif items:
        selected = items[0]
    kept = {k: v for k, v in filters.items() if v}

    def link(query_id: str | None = None, **more: Any) -> str:
        params = kept | ({"id": query_id} if query_id else {}) | more
        return "/console/misses" + (f"?{urlencode(params)}" if params else "")

    ids = [r.id for r in items]
    position = ids.index(selected.id) if selected is not None and selected.id in ids else -1
    prev_id = ids[position - 1] if position > 0 else None
    next_id = ids[position + 1] if 0 <= position < len(ids) - 1 else None
    detail: dict[str, Any] | None = None
    if selected is not None:
        text = (q or selected.question).strip()
        results = await run_in_threadpool(_search, state, text) if text else []
        label = labels.get(selected.id) or labels_of(state.querylog, [selected.id]).get(selected.id)
        detail = {
            "rec": selected,
            "sources": await run_in_threadpool(_passages, state, selected.retrieved),
            "query": text,
            "results": results,
            "label": label,
            "marked": set(label["chunks"]) if label else set(),
            "next": link(next_id) if next_id else link(),
        }
    return page(
        request,
        "misses.html",
        session,
        status=400 if error and not items else 200,
        title="Misses",
        items=items,
        total=total,
        offset=offset,
        page_size=PAGE_SIZE,
        labels=labels,
        reasons=MISS_REASONS,
        filters=filters,
        error=error,
        detail=detail,
        link=link,
        prev_link=link(prev_id) if prev_id else "",
        next_link=link(next_id) if next_id else "",
        not_answerable=NOT_ANSWERABLE,
    )


@router.get("/console/misses/{query_id}/search")
async def search_fragment(request: Request, query_id: str, q: str = "") -> Response:
    """The search results as an HTML fragment, for the inbox's script (no page reload)."""
    state, session = signed_in(request)
    if session is None:
        raise AuthError("sign in to the console first (/console/login)")
    rec = state.querylog.get(query_id)
    text = q.strip() or rec.question
    results = await run_in_threadpool(_search, state, text)
    label = labels_of(state.querylog, [rec.id]).get(rec.id)
    html = render_text(
        "_results.html",
        results=results,
        marked=set(label["chunks"]) if label else set(),
    )
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.post("/console/misses/{query_id}/label")
async def label(request: Request, query_id: str) -> Response:
    """Name the passages that answer a miss: stored exactly as ``POST /v1/feedback`` stores it.

    The rating is ``up`` when a marked passage was among those the answer was given from (the
    answer had what it needed), ``down`` otherwise.
    """
    state, session = signed_in(request)
    if session is None:
        raise AuthError("sign in to the console first (/console/login)")
    form = await request.form()
    sessions.check_csrf(session, request, _field(form.get("csrf")))
    chunk_ids = [c for c in form.getlist("chunk_ids") if isinstance(c, str) and c]
    if not chunk_ids:
        raise InvalidInputError("mark at least one passage that answers the question")
    rec = state.querylog.get(query_id)
    given = {cid for cid, _ in rec.retrieved}
    rating = "up" if given & set(chunk_ids) else "down"
    try:
        body = FeedbackIn(
            query_id=rec.id,
            rating=rating,
            relevant_chunk_ids=chunk_ids,
            comment="labelled in the console",
        )
    except ValidationError as exc:
        raise validation_error(exc) from None
    # The admin may label any client's query: the query's own client is who it acts for.
    out = await run_in_threadpool(apply_feedback, state, body, rec.client)
    back = safe_next(_field(form.get("next")), "/console/misses")
    return done(request, back, out.model_dump() | {"next": back, "status": "labelled"})


@router.post("/console/misses/{query_id}/not-answerable")
async def not_answerable(request: Request, query_id: str) -> Response:
    """Mark a miss "not answerable": counted, kept out of training."""
    state, session = signed_in(request)
    if session is None:
        raise AuthError("sign in to the console first (/console/login)")
    form = await request.form()
    sessions.check_csrf(session, request, _field(form.get("csrf")))
    rec = state.querylog.get(query_id)
    new = await run_in_threadpool(mark_not_answerable, state.querylog, rec)
    back = safe_next(_field(form.get("next")), "/console/misses")
    return done(
        request, back, {"query_id": rec.id, "status": NOT_ANSWERABLE, "new": new, "next": back}
    )

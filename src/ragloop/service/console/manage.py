"""Documents (list, upload, delete) and client API keys (create, shown once; revoke)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from ragloop.core.errors import AuthError, InvalidInputError, RagloopError
from ragloop.service.console import session as sessions
from ragloop.service.console.web import done, page, signed_in, to_login
from ragloop.service.native import documents
from ragloop.service.state import AppState


class SessionFirst(APIRoute):
    """A console upload route whose session is checked before its body is read: FastAPI parses
    and spools a multipart body before the handler runs, which nobody signed out should cost."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            _, session = signed_in(request)
            if session is None:
                raise AuthError("sign in to the console first (/console/login)")
            return await handler(request)

        return checked


router = APIRouter(include_in_schema=False)
uploads = APIRouter(include_in_schema=False, route_class=SessionFirst)
DOCS_PAGE = 100
MAX_KEY_NAME = 100


def _field(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _documents_page(
    request: Request,
    state: AppState,
    session: sessions.Session,
    offset: int,
    job: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    catalog = state.runtime.catalog
    return page(
        request,
        "documents.html",
        session,
        status=status,
        title="Documents",
        documents=catalog.list_documents(limit=DOCS_PAGE, offset=offset),
        total=catalog.counts()["documents"],
        offset=offset,
        page_size=DOCS_PAGE,
        job=job,
        error=error,
        max_files=state.settings.max_upload_files,
        max_mb=state.settings.max_file_mb,
    )


@router.get("/console/documents")
async def documents_page(
    request: Request,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    job: str | None = None,
) -> Response:
    """The corpus, a page at a time, with an upload form."""
    state, session = signed_in(request)
    if session is None:
        return to_login(request)
    return _documents_page(request, state, session, offset, job)


@uploads.post("/console/documents/upload")
async def upload(
    request: Request,
    files: Annotated[list[UploadFile], File()],
    csrf: Annotated[str | None, Form()] = None,
) -> Response:
    """Upload documents: ingested by a background job, as ``POST /v1/documents`` does."""
    state, session = signed_in(request)
    if session is None:
        raise AuthError("sign in to the console first (/console/login)")
    sessions.check_csrf(session, request, csrf)
    chosen = [f for f in files if f.filename]
    try:
        if not chosen:
            raise InvalidInputError("choose at least one file to upload")
        request.state.client = "admin"  # the console acts with the admin token's rights
        job = await documents.upload(request, chosen)
    except RagloopError as exc:
        if "application/json" in request.headers.get("accept", ""):
            raise
        return _documents_page(request, state, session, 0, None, exc.message, exc.http_status)
    return done(request, f"/console/documents?job={job.id}", {"job": job.id, "state": job.state})


router.include_router(uploads)


@router.post("/console/documents/{document_id}/delete")
async def delete(request: Request, document_id: str) -> Response:
    """Delete a document with its chunks and vectors (``DELETE /v1/documents/{id}``)."""
    _, session = signed_in(request)
    if session is None:
        raise AuthError("sign in to the console first (/console/login)")
    form = await request.form()
    sessions.check_csrf(session, request, _field(form.get("csrf")))
    request.state.client = "admin"  # the console acts with the admin token's rights
    out = await documents.delete_document(document_id, request)
    return done(request, "/console/documents", out.model_dump())


# ---- API keys --------------------------------------------------------------------------------


def _keys_page(
    request: Request,
    state: AppState,
    session: sessions.Session,
    created: tuple[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return page(
        request,
        "keys.html",
        session,
        status=status,
        title="API keys",
        keys=state.keys.all(),
        required=state.keys.required(),
        created=created,
        error=error,
    )


@router.get("/console/keys")
async def keys_page(request: Request) -> Response:
    """Client API keys (never their plaintext: only its prefix is kept)."""
    state, session = signed_in(request)
    if session is None:
        return to_login(request)
    return _keys_page(request, state, session)


@router.post("/console/keys/create")
async def create_key(request: Request) -> Response:
    """A new key; its plaintext is in this one response only (not cached, never stored)."""
    state, session = signed_in(request)
    if session is None:
        raise AuthError("sign in to the console first (/console/login)")
    form = await request.form()
    sessions.check_csrf(session, request, _field(form.get("csrf")))
    name = (_field(form.get("name")) or "").strip()
    if not name or len(name) > MAX_KEY_NAME:
        return _keys_page(
            request,
            state,
            session,
            error=f"a key needs a name of 1 to {MAX_KEY_NAME} characters",
            status=400,
        )
    key, plaintext = await run_in_threadpool(state.keys.create, name)
    if "application/json" in request.headers.get("accept", ""):
        return done(request, "", key.to_dict() | {"key": plaintext})
    return _keys_page(request, state, session, created=(key.name, plaintext), status=201)


@router.post("/console/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    """Revoke a key: refused at once from then on."""
    state, session = signed_in(request)
    if session is None:
        raise AuthError("sign in to the console first (/console/login)")
    form = await request.form()
    sessions.check_csrf(session, request, _field(form.get("csrf")))
    key = await run_in_threadpool(state.keys.revoke, key_id)
    return done(request, "/console/keys", key.to_dict())

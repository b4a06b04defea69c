"""Documents: upload (ingest as a background job), list, delete; job status."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from ragloop.service.auth import check_writer, require_client, require_writer
from ragloop.service.common import job_out, stage_uploads
from ragloop.service.schemas import DeletedOut, DocumentList, DocumentOut, ErrorOut, JobOut
from ragloop.service.state import get_state


class WriterFirst(APIRoute):
    """A write route whose credentials are checked before its body is read.

    FastAPI reads (and for multipart, parses and spools) a body before it runs any
    dependency; an upload without credentials must be refused before that work.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            request.state.client = check_writer(get_state(request), request)
            return await handler(request)

        return checked


router = APIRouter(tags=["documents"])
uploads = APIRouter(tags=["documents"], route_class=WriterFirst)
#: Reads need a client key when keys are in use; writes need a key or the admin token always,
#: unless RAGLOOP_OPEN_WRITES opens them (see ``check_writer``).
READ = [Depends(require_client)]
WRITE = [Depends(require_writer)]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 404, 413, 415, 422)
}


@uploads.post(
    "/v1/documents",
    status_code=202,
    response_model=JobOut,
    responses=ERRORS | {403: {"model": ErrorOut}},
)
async def upload(
    request: Request, files: Annotated[list[UploadFile], File(description="Documents")]
) -> JobOut:
    """Upload documents; they are ingested by a background job (poll ``/v1/jobs/{id}``).

    A file with the same name as an earlier upload by the same client (API key, admin token,
    or anonymous) replaces that document; other clients' uploads of that name are their own.
    """
    state = get_state(request)
    staged, names = await stage_uploads(state, files)
    return job_out(state.ingest.submit(staged, names, request.state.client))


router.include_router(uploads)


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses=ERRORS, dependencies=READ)
async def get_job(job_id: str, request: Request) -> JobOut:
    """A job's state, progress, counts and errors."""
    return job_out(get_state(request).jobs.get(job_id))


@router.get("/v1/documents", response_model=DocumentList, responses=ERRORS, dependencies=READ)
async def list_documents(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> DocumentList:
    """Documents in the catalog, by id."""
    state = get_state(request)
    catalog = state.runtime.catalog
    docs = catalog.list_documents(limit=limit, offset=offset)
    return DocumentList(
        total=catalog.counts()["documents"],
        limit=limit,
        offset=offset,
        documents=[
            DocumentOut(
                id=d.id,
                title=d.title,
                source=state.ingest.public_path(d.source),
                format=d.format,
                n_chunks=d.n_chunks,
                size_bytes=d.size_bytes,
                created_at=d.created_at,
                updated_at=d.updated_at,
            )
            for d in docs
        ],
    )


@router.delete(
    "/v1/documents/{document_id}",
    response_model=DeletedOut,
    responses=ERRORS | {403: {"model": ErrorOut}},
    dependencies=WRITE,
)
async def delete_document(document_id: str, request: Request) -> DeletedOut:
    """Delete a document with its chunks and vectors.

    The admin token may delete any document; a client key (or, with open writes, an anonymous
    writer) only the documents it uploaded. Any other document is a 404, as an unknown one is.
    """
    state = get_state(request)
    # Set by the write check (or by the console, which acts with the admin token's rights);
    # a caller that did not set it has the least rights.
    client: str | None = getattr(request.state, "client", None)
    removed = await run_in_threadpool(state.ingest.delete_as, client, document_id)
    return DeletedOut(id=document_id, deleted=True, chunks_deleted=removed)

"""The one place that maps errors to HTTP responses: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ragloop.core.errors import AuthError, ForbiddenError, RagloopError

log = logging.getLogger("ragloop.service")


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The error payload every route returns."""
    return {"error": {"code": code, "message": message}}


def validation_message(exc: RequestValidationError) -> tuple[int, str]:
    """A readable one-line message; malformed JSON is a 400, a schema mismatch a 422."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        ctx = detail.get("ctx", {}).get("error", "")
        return 400, f"malformed JSON body: {ctx}".rstrip(": ")
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return 422, "; ".join(parts)


#: Methods a 405 answer may list in its ``Allow`` header.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path.

    Starlette's own 405 names only the methods of the first route whose path matched, so
    ``OPTIONS /v1/documents`` listed POST but not GET (another route serves it).
    """
    allowed = []
    for method in _METHODS:
        scope = dict(request.scope) | {"method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers; domain code raises RagloopError, never HTTPException."""

    @app.exception_handler(RagloopError)
    async def _ragloop(request: Request, exc: RagloopError) -> JSONResponse:
        headers = (
            {"WWW-Authenticate": "Bearer"}
            if isinstance(exc, AuthError) and not isinstance(exc, ForbiddenError)
            else None
        )
        return JSONResponse(
            error_body(exc.code, exc.message), status_code=exc.http_status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = validation_message(exc)
        code = "malformed_json" if status == 400 else "invalid_request"
        return JSONResponse(error_body(code, message), status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, RagloopError):
            # FastAPI reports any failure while reading a body as "There was an error parsing
            # the body" (400), including our own refusal (a body over its size limit, 413).
            return await _ragloop(request, exc.__cause__)
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        headers = exc.headers
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            message = f"{request.method} is not allowed on {request.url.path}; use " + (
                ", ".join(allowed)
            )
            return JSONResponse(error_body(code, message), status_code=405, headers=headers)
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal_error", f"internal error ({exc.__class__.__name__}); see logs"),
            status_code=500,
        )

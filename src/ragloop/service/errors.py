"""The one place that maps errors to HTTP responses: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal_error", f"internal error ({exc.__class__.__name__}); see logs"),
            status_code=500,
        )

"""Request body size limits, enforced before any route reads or parses a body.

Without a limit a client could send a 200 MB JSON body and the server would read and parse all
of it before the 2,000-character question check refused it. ``BodyLimit`` is plain ASGI
middleware: it refuses a declared ``Content-Length`` over the route's limit without reading a
byte, and counts the bytes of a streamed (chunked) body as they arrive, stopping at the limit.

The refusal is raised as ``PayloadTooLargeError`` from ``receive``, so each protocol's routes
turn it into their own error shape (DocsGPT's ``{"error": ...}``, an SSE ``error`` event on
``/stream``, OpenAI's error object, the native one). Should a route swallow it, the
middleware still replaces whatever that route answers with a native 413.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragloop.core.errors import PayloadTooLargeError
from ragloop.core.settings import Settings
from ragloop.service.errors import error_body

#: Routes that take file uploads (multipart): their limit is the upload's own.
UPLOAD_ROUTES = frozenset({("POST", "/v1/documents"), ("POST", "/api/upload")})
#: Room for multipart framing and form fields on top of the files themselves.
MULTIPART_OVERHEAD = 1024 * 1024


def size_text(n: int) -> str:
    """A byte count as people read it, in binary units that say so (``8 MiB``)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} bytes"


def upload_body_limit(settings: Settings) -> int:
    """The largest upload body: every file at its limit, plus the multipart framing."""
    return settings.max_upload_files * settings.max_file_bytes + MULTIPART_OVERHEAD


class BodyLimit:
    """Refuse request bodies over ``RAGLOOP_MAX_BODY_BYTES`` (uploads: ``upload_body_limit``)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limit = settings.max_body_bytes
        self.upload_limit = max(upload_body_limit(settings), settings.max_body_bytes)

    def limit_for(self, method: str, path: str) -> tuple[int, str]:
        """The limit of a route and the setting(s) that make it."""
        if (method, path.rstrip("/") or "/") in UPLOAD_ROUTES:
            return self.upload_limit, "RAGLOOP_MAX_UPLOAD_FILES x RAGLOOP_MAX_FILE_MB"
        return self.limit, "RAGLOOP_MAX_BODY_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        limit, setting = self.limit_for(method, path)
        message = (
            f"the request body is over {size_text(limit)} ({limit} bytes), the limit for "
            f"{method} {path} ({setting})"
        )
        declared: int | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        received = 0
        exceeded = declared is not None and declared > limit
        refused = False
        started = False
        replaced = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded, refused
            if refused:
                # Only a streaming response's disconnect watcher asks again; it is cancelled
                # when the response ends. Reading on would pull the rest of an oversize body.
                await asyncio.Event().wait()  # never set: waits until cancelled
            if exceeded:  # declared too large: not one byte of the body is read
                refused = True
                raise PayloadTooLargeError(message)
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    exceeded = refused = True
                    raise PayloadTooLargeError(message)
            return msg

        async def checked_send(msg: Message) -> None:
            nonlocal started, replaced
            if msg["type"] == "http.response.start":
                started = True
                if exceeded and msg["status"] != 413:
                    # The route swallowed the refusal: answer 413 all the same.
                    replaced = True
                    await _send_413(send, message)
                    return
                if exceeded:
                    # The unread rest of the body makes the connection unusable for another
                    # request: tell the server and the client to close it.
                    headers = [(k, v) for k, v in msg.get("headers", []) if k != b"connection"]
                    msg = {**msg, "headers": [*headers, (b"connection", b"close")]}
            if replaced:
                return
            await send(msg)

        try:
            await self.app(scope, limited_receive, checked_send)
        except PayloadTooLargeError:
            if started:
                raise
            await _send_413(send, message)


async def _send_413(send: Send, message: str) -> None:
    body = json.dumps(error_body(PayloadTooLargeError.code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

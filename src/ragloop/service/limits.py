"""Request limits: body sizes, and per-caller rates.

**Body sizes.** Without a limit a client could send a 200 MB JSON body and the server would read
and parse all of it before the 2,000-character question check refused it. ``BodyLimit`` is plain
ASGI middleware: it refuses a declared ``Content-Length`` over the route's limit without reading
a byte, and counts the bytes of a streamed (chunked) body as they arrive, stopping at the limit.

The refusal is raised as ``PayloadTooLargeError`` from ``receive``, so each protocol's routes
turn it into their own error shape (DocsGPT's ``{"error": ...}``, an SSE ``error`` event on
``/stream``, OpenAI's error object, the native one). Should a route swallow it, the
middleware still replaces whatever that route answers with a native 413.

**Rates.** One caller (an API key; the client address when anonymous) gets token buckets, kept
in this process: every client request takes one from ``RAGLOOP_RATE_LIMIT_PER_MINUTE``'s, a
write (upload, re-upload, delete) one from ``RAGLOOP_WRITE_RATE_LIMIT_PER_MINUTE``'s, and
``/v1/embeddings`` one request and its body's bytes from the two embedding buckets. A bucket
holds a minute's worth and refills continuously, so bursts up to the limit pass. Callers are
charged where they are authenticated (``service.auth``), after their key is verified, so a key
sent in a body (DocsGPT) counts as that key and a wrong key cannot open a fresh bucket. A
refusal is a ``RateLimitedError`` (429) in the route's own error shape; ``RateLimit``, the
middleware that marks each request for charging, adds its ``Retry-After`` header.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragloop.core.errors import PayloadTooLargeError, RateLimitedError
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


# ---- per-caller rates ------------------------------------------------------------------------

#: Routes whose body is charged, byte by byte, to the caller's embedding budget.
EMBED_ROUTES = frozenset({("POST", "/v1/embeddings")})
#: Most callers with a bucket; beyond it the least recently seen caller's buckets are dropped.
MAX_CALLERS = 10_000


@dataclass(frozen=True)
class Rate:
    """One limit: ``per_minute`` units (requests or bytes), and the setting that makes it."""

    name: str
    per_minute: int
    setting: str
    unit: str


def rates(settings: Settings) -> dict[str, Rate]:
    """The limits in force (a setting of 0 is no limit), by bucket name."""
    every = (
        Rate(
            "requests", settings.rate_limit_per_minute, "RAGLOOP_RATE_LIMIT_PER_MINUTE", "requests"
        ),
        Rate(
            "writes",
            settings.write_rate_limit_per_minute,
            "RAGLOOP_WRITE_RATE_LIMIT_PER_MINUTE",
            "uploads and deletes",
        ),
        Rate(
            "embed_requests",
            settings.embed_rate_limit_per_minute,
            "RAGLOOP_EMBED_RATE_LIMIT_PER_MINUTE",
            "embedding requests",
        ),
        Rate(
            "embed_bytes",
            settings.embed_bytes_per_minute,
            "RAGLOOP_EMBED_BYTES_PER_MINUTE",
            "bytes of embedding requests",
        ),
    )
    return {r.name: r for r in every if r.per_minute > 0}


class RateLimiter:
    """Token buckets by (caller, limit), thread-safe; a bucket holds ``per_minute`` tokens and
    refills at ``per_minute / 60`` a second."""

    def __init__(
        self,
        limits: Mapping[str, Rate],
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = MAX_CALLERS,
    ) -> None:
        self.limits = dict(limits)
        self.clock = clock
        self.max_callers = max_callers
        self._lock = threading.Lock()
        # caller -> {limit name: [tokens, last refill]}
        self._buckets: OrderedDict[str, dict[str, list[float]]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Whether any limit is in force."""
        return bool(self.limits)

    def _bucket(self, caller: str, name: str, now: float) -> list[float]:
        buckets = self._buckets.get(caller)
        if buckets is None:
            buckets = self._buckets[caller] = {}
            while len(self._buckets) > self.max_callers:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(caller)
        rate = self.limits[name]
        bucket = buckets.setdefault(name, [float(rate.per_minute), now])
        bucket[0] = min(rate.per_minute, bucket[0] + (now - bucket[1]) * rate.per_minute / 60)
        bucket[1] = now
        return bucket

    def take(self, caller: str, charges: Mapping[str, float]) -> tuple[float, Rate | None]:
        """Take ``charges`` from the caller's buckets, all or none.

        Returns ``(0, None)`` when admitted, else the seconds until the charges would be, and
        the limit that waits longest. A charge larger than a whole bucket is admitted when the
        bucket is full and leaves it owing the rest, so no request is refused for ever.
        """
        with self._lock:
            now = self.clock()
            wait, blocking = 0.0, None
            taken = []
            for name, amount in charges.items():
                if name not in self.limits or amount <= 0:
                    continue
                rate = self.limits[name]
                bucket = self._bucket(caller, name, now)
                need = min(float(amount), float(rate.per_minute))
                if bucket[0] < need:
                    seconds = (need - bucket[0]) * 60 / rate.per_minute
                    if seconds > wait:
                        wait, blocking = seconds, rate
                taken.append((bucket, float(amount)))
            if blocking is not None:
                return wait, blocking
            for bucket, amount in taken:
                bucket[0] -= amount
            return 0.0, None

    def owe(self, caller: str, charges: Mapping[str, float]) -> None:
        """Charge what is only known after a request (a chunked body's size); never refuses."""
        with self._lock:
            now = self.clock()
            for name, amount in charges.items():
                if name in self.limits and amount > 0:
                    self._bucket(caller, name, now)[0] -= amount


@dataclass
class _Pending:
    """What the rate limiter needs to know of the request being served."""

    limiter: RateLimiter
    method: str
    path: str
    address: str
    declared_bytes: int | None
    received_bytes: int = 0
    caller: str | None = None
    retry_after_s: int | None = None

    @property
    def embeds(self) -> bool:
        return (self.method, self.path.rstrip("/") or "/") in EMBED_ROUTES


_PENDING: ContextVar[_Pending | None] = ContextVar("ragloop_rate_pending", default=None)


def admit(key_id: str | None, *, write: bool = False) -> None:
    """Charge the request being served to its caller: the key ``key_id``, or its client address
    when anonymous; ``RateLimitedError`` when a limit is reached.

    Called by ``service.auth`` once the caller is known; later calls for the same request do
    nothing, so a route that authenticates twice is charged once. Outside a request marked by
    ``RateLimit`` (no limits in force, or a direct call) it does nothing.
    """
    pending = _PENDING.get()
    if pending is None or pending.caller is not None:
        return
    pending.caller = f"key {key_id}" if key_id else f"address {pending.address}"
    charges: dict[str, float] = {"requests": 1}
    if write:
        charges["writes"] = 1
    if pending.embeds:
        charges["embed_requests"] = 1
        charges["embed_bytes"] = pending.declared_bytes or 0
    wait, rate = pending.limiter.take(pending.caller, charges)
    if rate is None:
        return
    seconds = max(1, math.ceil(wait))
    pending.retry_after_s = seconds
    who = f"API key {key_id}" if key_id else "this client address"
    raise RateLimitedError(
        f"rate limit: {who} may send {rate.per_minute} {rate.unit} a minute ({rate.setting}); "
        f"retry in {seconds} s",
        seconds,
    )


class RateLimit:
    """Marks each HTTP request for ``admit`` and adds ``Retry-After`` to its 429 answer.

    Charging happens in ``admit``, where the caller is known. A chunked embedding body (no
    ``Content-Length``) is counted as it arrives and charged when the request ends.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limiter = RateLimiter(rates(settings))
        #: A body declared over this is refused unread (``BodyLimit``): it costs no bytes.
        self.body_limit = settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limiter.enabled:
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = max(0, int(value))
                except ValueError:
                    declared = None
        if declared is not None and declared > self.body_limit:
            declared = 0
        client = scope.get("client")
        pending = _Pending(
            self.limiter,
            scope["method"],
            scope["path"],
            str(client[0]) if client else "unknown",
            declared,
        )

        async def counted_receive() -> Message:
            msg = await receive()
            if msg["type"] == "http.request":
                pending.received_bytes += len(msg.get("body", b""))
            return msg

        async def retry_after_send(msg: Message) -> None:
            if (
                msg["type"] == "http.response.start"
                and msg["status"] == 429
                and pending.retry_after_s is not None
            ):
                headers = [(k, v) for k, v in msg.get("headers", []) if k != b"retry-after"]
                msg = {
                    **msg,
                    "headers": [*headers, (b"retry-after", str(pending.retry_after_s).encode())],
                }
            await send(msg)

        token = _PENDING.set(pending)
        try:
            await self.app(scope, counted_receive if pending.embeds else receive, retry_after_send)
        finally:
            _PENDING.reset(token)
            caller, refused = pending.caller, pending.retry_after_s is not None
            if pending.embeds and caller is not None and not refused and declared is None:
                self.limiter.owe(caller, {"embed_bytes": pending.received_bytes})

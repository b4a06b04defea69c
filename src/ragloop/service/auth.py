"""Authentication: client API keys for query/feedback routes, a token for admin, and either
for writes (upload, re-upload, delete), which are closed by default even with no key.

Once a caller is known, its request is charged to its rate limits (``service.limits.admit``):
the key, or the client address when anonymous; the admin token is not limited.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from ragloop.core.errors import AuthError, ForbiddenError
from ragloop.service.limits import admit
from ragloop.service.state import AppState, get_state


def presented_key(request: Request) -> str | None:
    """The key a request carries: ``Authorization: Bearer`` or ``X-API-Key``."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def check_client(state: AppState, key: str | None) -> str | None:
    """The client's key id, None when no keys are configured; AuthError otherwise.

    The request is charged to the caller's rate limits (``RateLimitedError`` when over).
    """
    key_id = verify_client(state, key)
    admit(key_id)
    return key_id


def verify_client(state: AppState, key: str | None) -> str | None:
    """``check_client`` without charging the request to a rate limit."""
    if not state.keys.required():
        return None
    if not key:
        raise AuthError(
            "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )
    key_id = state.keys.verify(key)
    if key_id is None:
        raise AuthError("Invalid API key.")
    return key_id


async def require_client(request: Request) -> str | None:
    """FastAPI dependency for client routes."""
    state = get_state(request)
    key_id = check_client(state, presented_key(request))
    request.state.client = key_id
    return key_id


def is_admin_token(state: AppState, presented: str | None) -> bool:
    """True when ``presented`` is the configured admin token."""
    token = state.settings.admin_token
    if token is None or not token.get_secret_value() or not presented:
        return False
    return hmac.compare_digest(presented.encode(), token.get_secret_value().encode())


def check_writer(state: AppState, request: Request, key: object = None) -> str | None:
    """Who may upload, re-upload or delete documents; AuthError/ForbiddenError otherwise.

    A valid client key (``key`` from a body or form field, else the headers) or the admin
    token always may. With no key in use, writes are closed unless ``RAGLOOP_OPEN_WRITES``
    opens them (a local demo): anyone reaching the port could otherwise replace or delete the
    corpus. Open writes still refuse a multipart upload with no credential header: a plain HTML
    form on any web page can post multipart cross-site, but cannot set a header (that takes a
    CORS preflight), so the header is the CSRF token.
    """
    header = presented_key(request)
    presented = key.strip() if isinstance(key, str) and key.strip() else header
    if is_admin_token(state, presented):
        return "admin"
    if state.keys.required():
        key_id = verify_client(state, presented)
        admit(key_id, write=True)
        return key_id
    if state.settings.open_writes:
        multipart = request.headers.get("content-type", "").lower().startswith("multipart/")
        if multipart and header is None:
            raise AuthError(
                "uploads need a credential header, even with RAGLOOP_OPEN_WRITES: send "
                "'X-API-Key: <anything>' (or a key, or the admin token) so a web page's form "
                "cannot upload on a visitor's behalf"
            )
        admit(None, write=True)
        return None
    admin = state.settings.admin_token is not None and state.settings.admin_token.get_secret_value()
    fix = (
        "send the admin token ('Authorization: Bearer <token>')"
        if admin
        else "create an API key ('ragloop keys create NAME') or set RAGLOOP_ADMIN_TOKEN"
    )
    error = AuthError if admin else ForbiddenError
    raise error(
        f"uploading and deleting documents needs an API key or the admin token: {fix}, or set "
        "RAGLOOP_OPEN_WRITES=true to let anyone write while no key exists"
    )


async def require_writer(request: Request) -> str | None:
    """FastAPI dependency for the native write routes (``check_writer``)."""
    key_id = check_writer(get_state(request), request)
    request.state.client = key_id
    return key_id


async def require_admin(request: Request) -> None:
    """FastAPI dependency for /admin routes: 403 when disabled, 401 on a wrong token."""
    token = get_state(request).settings.admin_token
    if token is None or not token.get_secret_value():
        raise ForbiddenError(
            "admin routes are disabled; set RAGLOOP_ADMIN_TOKEN and send "
            "'Authorization: Bearer <token>' to enable them"
        )
    if not is_admin_token(get_state(request), presented_key(request)):
        raise AuthError("invalid or missing admin token (Authorization: Bearer <token>)")

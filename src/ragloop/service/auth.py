"""Authentication: client API keys for query/feedback/upload routes, a token for admin."""

from __future__ import annotations

import hmac

from fastapi import Request

from ragloop.core.errors import AuthError, ForbiddenError
from ragloop.service.state import AppState, get_state


def presented_key(request: Request) -> str | None:
    """The key a request carries: ``Authorization: Bearer`` or ``X-API-Key``."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def check_client(state: AppState, key: str | None) -> str | None:
    """The client's key id, None when no keys are configured; AuthError otherwise."""
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


async def require_admin(request: Request) -> None:
    """FastAPI dependency for /admin routes: 403 when disabled, 401 on a wrong token."""
    token = get_state(request).settings.admin_token
    if token is None or not token.get_secret_value():
        raise ForbiddenError(
            "admin routes are disabled; set RAGLOOP_ADMIN_TOKEN and send "
            "'Authorization: Bearer <token>' to enable them"
        )
    presented = presented_key(request) or ""
    if not hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
        raise AuthError("invalid or missing admin token (Authorization: Bearer <token>)")

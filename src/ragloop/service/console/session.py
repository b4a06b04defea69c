"""Console sessions: a signed cookie made from the admin token, a CSRF token per session.

The cookie holds ``{sub, exp, csrf, tok}`` as base64url JSON followed by an HMAC-SHA256 of it
under the console secret. The secret is generated once (``secrets.token_hex``) and kept in the
catalog's key-value table, so every worker process and restart shares it; it never leaves the
server. ``tok`` is a keyed fingerprint of the admin token the session was made with: changing
``RAGLOOP_ADMIN_TOKEN`` ends every session at once. The cookie is HttpOnly, SameSite=Strict,
scoped to ``/console`` and ends after ``SESSION_TTL_S`` (checked against ``exp``, not only by
the browser).

CSRF: every state-changing console request is a POST that must carry the session's token
(form field ``csrf`` or header ``X-CSRF-Token``) and, when the browser sends one, an ``Origin``
(else ``Referer``) of this very server. The sign-in form, which has no session yet, uses a
double-submit token: a random value in a short-lived cookie that the form must repeat.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from starlette.responses import Response

from ragloop.core.errors import AuthError, ForbiddenError
from ragloop.service.auth import is_admin_token
from ragloop.service.limits import Rate, RateLimiter
from ragloop.service.state import AppState

COOKIE = "rl_console"
#: The sign-in form's double-submit cookie.
LOGIN_COOKIE = "rl_console_login"
COOKIE_PATH = "/console"
#: How long a session lasts after sign-in.
SESSION_TTL_S = 8 * 3600
LOGIN_TTL_S = 1800
SECRET_KEY = "console_secret"
#: Sessions signed out before they expired: ``{session id: expiry}``, pruned as it is written.
REVOKED_KEY = "console_signed_out"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
#: Sign-in attempts (posts of the sign-in form, right or wrong) one client address may make
#: a minute; the bucket refills continuously, so a burst of this many passes.
SIGN_IN_PER_MINUTE = 10
SIGN_IN_RATE = Rate(
    "sign_in", SIGN_IN_PER_MINUTE, "the console's sign-in limit", "sign-in attempts"
)


@dataclass(frozen=True)
class Session:
    """A signed-in console user."""

    subject: str
    expires_at: float
    csrf: str
    sid: str


def console_secret(state: AppState) -> bytes:
    """The signing secret, created on first use and shared through the catalog."""
    catalog = state.runtime.catalog
    value = catalog.get_meta(SECRET_KEY)
    if not value:
        catalog.set_meta(SECRET_KEY, secrets.token_hex(32))
        value = catalog.get_meta(SECRET_KEY)  # another process may have written first
    assert value
    return value.encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, payload: dict[str, Any]) -> str:
    """``payload`` as a signed cookie value."""
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def unsign(secret: bytes, value: str) -> dict[str, Any] | None:
    """The payload of a value ``sign`` made with ``secret``; None when tampered or malformed."""
    body, _, mac = value.partition(".")
    if not body or not mac:
        return None
    want = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(want, _unb64(mac)):
            return None
        payload = json.loads(_unb64(body))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def token_fingerprint(secret: bytes, state: AppState) -> str:
    """A keyed digest of the configured admin token ('' when none is set)."""
    token = state.settings.admin_token
    raw = token.get_secret_value() if token is not None else ""
    if not raw:
        return ""
    return hmac.new(secret, b"admin-token:" + raw.encode(), hashlib.sha256).hexdigest()[:32]


def admin_enabled(state: AppState) -> bool:
    """True when an admin token is configured (the console is off without one)."""
    token = state.settings.admin_token
    return token is not None and bool(token.get_secret_value())


def sign_in(state: AppState, presented: str) -> str:
    """A new session cookie value for the admin token; AuthError/ForbiddenError otherwise."""
    if not admin_enabled(state):
        raise ForbiddenError(
            "the console is disabled: set RAGLOOP_ADMIN_TOKEN and sign in with that token"
        )
    if not is_admin_token(state, presented.strip()):
        raise AuthError("wrong admin token")
    secret = console_secret(state)
    payload = {
        "sub": "admin",
        "sid": secrets.token_hex(8),
        "exp": time.time() + SESSION_TTL_S,
        "csrf": secrets.token_urlsafe(24),
        "tok": token_fingerprint(secret, state),
    }
    return sign(secret, payload)


def read_session(state: AppState, request: Request) -> Session | None:
    """The request's valid session, or None (no cookie, bad signature, expired, token changed)."""
    value = request.cookies.get(COOKIE)
    if not value or not admin_enabled(state):
        return None
    secret = console_secret(state)
    payload = unsign(secret, value)
    if payload is None:
        return None
    exp, csrf, tok, sid = (payload.get(k) for k in ("exp", "csrf", "tok", "sid"))
    if not isinstance(exp, (int, float)) or exp <= time.time():
        return None
    if not isinstance(csrf, str) or not isinstance(tok, str) or not isinstance(sid, str):
        return None
    if not hmac.compare_digest(tok, token_fingerprint(secret, state)):
        return None
    if sid in _revoked(state):
        return None
    return Session(str(payload.get("sub", "admin")), float(exp), csrf, sid)


def _revoked(state: AppState) -> dict[str, float]:
    raw = state.runtime.catalog.get_meta(REVOKED_KEY)
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def sign_out(state: AppState, session: Session) -> None:
    """End ``session`` on the server too: its cookie is refused from now on, in every process."""
    now = time.time()
    revoked = {s: e for s, e in _revoked(state).items() if isinstance(e, (int, float)) and e > now}
    revoked[session.sid] = session.expires_at
    state.runtime.catalog.set_meta(REVOKED_KEY, json.dumps(revoked))


def require_session(state: AppState, request: Request) -> Session:
    """The session, or AuthError (for the console's JSON endpoints)."""
    session = read_session(state, request)
    if session is None:
        raise AuthError("sign in to the console first (/console/login); the session may expire")
    return session


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another origin.

    Browsers send ``Origin`` with every POST (Chromium, Firefox); ``Referer`` is the fallback.
    A request with neither (a non-browser client) is left to the CSRF token.
    """
    claimed = request.headers.get("origin")
    if claimed is None:
        referer = request.headers.get("referer")
        if not referer:
            return True
        parts = urlsplit(referer)
        claimed = f"{parts.scheme}://{parts.netloc}"
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return hmac.compare_digest(claimed.lower().encode(), own.lower().encode())


def check_csrf(session: Session, request: Request, presented: str | None) -> None:
    """ForbiddenError unless the request is same-origin and carries the session's token."""
    if not same_origin(request):
        raise ForbiddenError("cross-site request refused: its Origin is not this console")
    token = presented or request.headers.get(CSRF_HEADER) or ""
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise ForbiddenError("missing or wrong CSRF token: reload the page and try again")


def sign_in_wait(request: Request) -> int:
    """Charge a sign-in attempt to the request's client address: 0 when it may go on, else
    the seconds until it may try again. The buckets live in this process, per app (a guess at
    the token costs a worker process's share of attempts, not more)."""
    limiter = getattr(request.app.state, "console_sign_in", None)
    if not isinstance(limiter, RateLimiter):
        limiter = RateLimiter({SIGN_IN_RATE.name: SIGN_IN_RATE})
        request.app.state.console_sign_in = limiter
    address = request.client.host if request.client else "unknown"
    wait, refused = limiter.take(address, {SIGN_IN_RATE.name: 1})
    return 0 if refused is None else max(1, math.ceil(wait))


def login_token(request: Request) -> str:
    """The sign-in form's double-submit token: the cookie's value, or a fresh one."""
    existing = request.cookies.get(LOGIN_COOKIE)
    return existing if existing and len(existing) >= 16 else secrets.token_urlsafe(24)


def check_login_csrf(request: Request, presented: str | None) -> None:
    """ForbiddenError unless the sign-in post repeats its cookie's token, from this origin."""
    if not same_origin(request):
        raise ForbiddenError("cross-site sign-in refused: its Origin is not this console")
    cookie = request.cookies.get(LOGIN_COOKIE) or ""
    if not cookie or not presented or not hmac.compare_digest(cookie.encode(), presented.encode()):
        raise ForbiddenError("missing or wrong CSRF token: reload the sign-in page")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """Attach a console cookie: HttpOnly, SameSite=Strict, /console only, expiring."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    """Attach a session cookie: HttpOnly, SameSite=Strict, /console only, expiring."""
    _set_cookie(response, request, COOKIE, value, SESSION_TTL_S)
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)


def set_login_cookie(response: Response, request: Request, token: str) -> None:
    """Attach the sign-in form's double-submit cookie."""
    _set_cookie(response, request, LOGIN_COOKIE, token, LOGIN_TTL_S)


def clear_session_cookie(response: Response, request: Request) -> None:
    """End the session in the browser."""
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=_secure(request)
    )

"""Rendering and guards shared by the console's pages: Jinja2 templates, security headers, the
session check that sends a browser to sign in, and actions that answer a form or a script."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from ragloop.core.errors import InvalidInputError
from ragloop.service.console.session import Session, read_session
from ragloop.service.state import AppState, get_state

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
#: Scripts and styles come from this server only; no inline script can run, nothing may frame
#: the console (clickjacking of its buttons), forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NAV = (
    ("overview", "/console/", "Overview"),
    ("misses", "/console/misses", "Misses"),
    ("jobs", "/console/jobs", "Jobs"),
    ("versions", "/console/versions", "Versions"),
    ("documents", "/console/documents", "Documents"),
    ("keys", "/console/keys", "API keys"),
)


def format_time(ts: float | None) -> str:
    """A unix time as UTC text."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


@functools.cache
def environment() -> jinja2.Environment:
    """The template environment (built on first use, never at import)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = format_time
    return env


def render_text(name: str, **context: Any) -> str:
    """A template rendered to text."""
    return environment().get_template(name).render(**context)


def page(
    request: Request,
    name: str,
    session: Session | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A full console page with the navigation and the session's CSRF token."""
    context.setdefault("error", None)
    html = render_text(
        name,
        nav=NAV,
        session=session,
        csrf=session.csrf if session else "",
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def to_login(request: Request) -> RedirectResponse:
    """Send a browser without a valid session to the sign-in page, then back here."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=303)


def signed_in(request: Request) -> tuple[AppState, Session | None]:
    """The app state and the request's session (None: not signed in)."""
    state = get_state(request)
    return state, read_session(state, request)


def wants_json(request: Request) -> bool:
    """True when the console's script sent the action (it asks for JSON)."""
    return "application/json" in request.headers.get("accept", "")


def done(request: Request, back: str, data: dict[str, Any]) -> Response:
    """An action's answer: JSON for the script, else a redirect (post/redirect/get)."""
    if wants_json(request):
        return JSONResponse(data, headers={"Cache-Control": "no-store"})
    return RedirectResponse(back, status_code=303)


def safe_next(target: str | None, default: str = "/console/") -> str:
    """A redirect target inside the console only (no open redirect)."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return default


def validation_error(exc: ValidationError) -> InvalidInputError:
    """A pydantic error as one readable line, as the API's 422s read."""
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ())) or "options"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return InvalidInputError("; ".join(parts))

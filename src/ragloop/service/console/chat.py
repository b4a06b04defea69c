"""The chat page at ``/chat``, for everyone: it asks ``POST /v1/query/stream`` and rates
answers through ``POST /v1/feedback`` from the browser, with the visitor's API key when keys
are in use. It needs no console session: it holds no power the API does not already give."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from ragloop.core.errors import NotFoundError
from ragloop.service.console.web import SECURITY_HEADERS, STATIC, render_text
from ragloop.service.state import get_state

router = APIRouter(include_in_schema=False)
#: The only files ``/console/static`` serves, with their types.
STATIC_FILES = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "chat.js": "text/javascript; charset=utf-8",
}


@router.get("/chat")
async def chat_page(request: Request) -> HTMLResponse:
    """Ask, read the answer as it streams with numbered sources, rate it."""
    state = get_state(request)
    html = render_text("chat.html", key_required=state.keys.required())
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/console/static/{name}")
async def static(name: str) -> Response:
    """The console's script and style sheet (a fixed list: no path is ever joined)."""
    media = STATIC_FILES.get(name)
    if media is None:
        raise NotFoundError(f"no console file {name!r}")
    return FileResponse(STATIC / name, media_type=media, headers={"Cache-Control": "no-cache"})

"""The web console for the learning loop (``/console``) and the chat page (``/chat``).

Server-rendered Jinja2 pages with a small plain script for the live parts. Every console page
and action needs a session signed in with the admin token (``session``); every action is a
POST carrying the session's CSRF token. The routes are left out of the OpenAPI schema on
purpose: they are pages for people, not an API (the ``/admin`` and ``/v1`` routes they call
are documented there).
"""

from __future__ import annotations

from fastapi import APIRouter

from ragloop.service.console import chat, inbox, loop, manage

router = APIRouter(include_in_schema=False)
for _module in (inbox, loop, manage, chat):
    router.include_router(_module.router)

__all__ = ["router"]

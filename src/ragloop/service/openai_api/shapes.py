"""Request parsing, errors and usage counts shared by the OpenAI-compatible routes.

OpenAI clients expect ``{"error": {"message", "type", "param", "code"}}`` on failure, so the
routes catch our errors and answer in that shape instead of the native one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ragloop.core.errors import AuthError, InvalidInputError, RagloopError
from ragloop.core.generators.base import Turn
from ragloop.service.common import read_json

M = TypeVar("M", bound=BaseModel)

#: The model name the chat routes answer as; the request's ``model`` is ignored.
CHAT_MODEL = "ragloop"


class ChatMessage(BaseModel):
    """One message; ``content`` is a string or a list of typed parts."""

    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[Any] | None = None


class ChatBody(BaseModel):
    """The fields of a chat completion request that ragloop reads; others are ignored."""

    model_config = ConfigDict(extra="ignore")

    messages: list[ChatMessage] = Field(..., min_length=1, max_length=1000)
    model: str | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    conversation_id: str | None = None
    docsgpt: dict[str, Any] | None = None

    @property
    def include_usage(self) -> bool:
        """``stream_options.include_usage``: a final chunk with token counts."""
        return bool((self.stream_options or {}).get("include_usage"))

    @property
    def conversation(self) -> object:
        """The conversation to continue: top-level or in the ``docsgpt`` extension."""
        return self.conversation_id or (self.docsgpt or {}).get("conversation_id")


def error_response(exc: RagloopError) -> JSONResponse:
    """An error in OpenAI's shape."""
    kind = "invalid_request_error" if exc.http_status < 500 else "server_error"
    code = "invalid_api_key" if isinstance(exc, AuthError) else exc.code
    return JSONResponse(
        {"error": {"message": exc.message, "type": kind, "param": None, "code": code}},
        status_code=exc.http_status,
    )


async def parse_body(request: Request, model: type[M]) -> M:
    """The JSON body validated as ``model``; InvalidInputError with a readable message."""
    return validate_body(model, await read_json(request))


def validate_body(model: type[M], body: dict[str, Any]) -> M:
    """``body`` validated as ``model``; InvalidInputError naming the first few problems."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        parts = []
        for e in exc.errors()[:5]:
            loc = ".".join(str(p) for p in e.get("loc", ())) or "body"
            parts.append(f"{loc}: {e.get('msg', 'invalid')}")
        raise InvalidInputError("; ".join(parts)) from None


def text_of(content: str | list[Any] | None) -> str:
    """A message's text: the string, or its ``text`` parts joined (images are dropped)."""
    if isinstance(content, str):
        return content
    out = []
    for part in content or []:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            out.append(str(part.get("text") or ""))
    return "\n".join(out)


def split_messages(messages: Sequence[ChatMessage]) -> tuple[str, list[Turn]]:
    """The last user message as the question; earlier user/assistant pairs as history.

    System and developer messages are ignored: ragloop answers with its own citing prompt.
    """
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last is None:
        raise InvalidInputError("messages must include a message with role 'user'")
    history = []
    earlier = messages[:last]
    for i, m in enumerate(earlier):
        following = earlier[i + 1] if i + 1 < len(earlier) else None
        if m.role == "user" and following is not None and following.role == "assistant":
            history.append(Turn(text_of(m.content), text_of(following.content)))
    return text_of(messages[last].content), history


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI's usage block."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }

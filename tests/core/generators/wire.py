"""Real-shaped provider payloads (Anthropic Messages API, OpenAI chat completions) and contexts.

The Anthropic shapes follow the SDK's own types (``anthropic/types/raw_*_event.py``,
``message.py``); the OpenAI chunks are what Ollama and vLLM send.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ragloop.core.generators.base import Context

MODEL = "claude-sonnet-5-5"

CONTEXTS = [
    Context(
        n=1,
        chunk_id="c1",
        document_id="d1",
        title="Scurvy",
        source="docs/scurvy.md",
        text=(
            "Scurvy is a disease caused by a lack of vitamin C. Symptoms include weakness, "
            "gum disease and bleeding under the skin. Sailors on long voyages often suffered "
            "from it."
        ),
        score=0.82,
    ),
    Context(
        n=2,
        chunk_id="c2",
        document_id="d2",
        title="Citrus fruit",
        source="docs/citrus.md",
        text=(
            "Citrus fruits such as oranges and lemons are rich in vitamin C. The British navy "
            "gave its sailors lemon juice to prevent scurvy."
        ),
        score=0.74,
    ),
    Context(
        n=3,
        chunk_id="c3",
        document_id="d3",
        title="Volcanoes",
        source="docs/volcano.md",
        text="Lava is molten rock that erupts from a volcano. Magma cools slowly underground.",
        score=0.31,
    ),
]


def sse(events: Sequence[dict[str, Any]]) -> bytes:
    """Anthropic-style SSE: an ``event:`` line naming the type, then the JSON ``data:``."""
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def anthropic_events(texts: Sequence[str], *, complete: bool = True) -> list[dict[str, Any]]:
    """The event sequence of one streamed text reply, as the Messages API sends it."""
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 412, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
        for t in texts
    ]
    if complete:
        events += [
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 15},
            },
            {"type": "message_stop"},
        ]
    return events


def anthropic_message(text: str) -> dict[str, Any]:
    """A non-streaming Messages API reply."""
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 40, "output_tokens": 12},
    }


def anthropic_error(kind: str, message: str) -> dict[str, Any]:
    """The Messages API error body."""
    return {"type": "error", "error": {"type": kind, "message": message}}


def openai_chunk(content: str | None, finish: str | None = None) -> dict[str, Any]:
    """One ``chat.completion.chunk``."""
    delta: dict[str, Any] = {} if content is None else {"role": "assistant", "content": content}
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1737000000,
        "model": "llama3.1",
        "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def openai_sse(texts: Sequence[str], *, done: bool = True, finish: bool = True) -> bytes:
    """An OpenAI-compatible stream: ``data:`` chunks, a finish chunk and ``[DONE]``."""
    chunks = [openai_chunk(t) for t in texts]
    if finish:
        chunks.append(openai_chunk(None, "stop"))
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    return (body + ("data: [DONE]\n\n" if done else "")).encode()


def openai_completion(text: str) -> dict[str, Any]:
    """A non-streaming ``chat.completion``."""
    return {
        "id": "chatcmpl-456",
        "object": "chat.completion",
        "created": 1737000000,
        "model": "llama3.1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38},
    }

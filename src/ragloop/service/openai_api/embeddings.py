"""OpenAI-compatible ``POST /v1/embeddings`` with ragloop's active (possibly fine-tuned) model.

A DocsGPT backend (``EMBEDDINGS_BASE_URL``) or any OpenAI client can embed with it. Inputs are
embedded **document-side** by default, the way ragloop embeds chunks; the extension field
``"input_type": "query"`` embeds them query-side instead. With today's models both sides are
the same network; once the learning loop trains a query-only adapter, only ``"query"`` inputs
go through it, so a client that cannot send the field gets document-side vectors for its
queries too (consistent with its stored vectors, without the adapter's gain).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ragloop.core.embedding.query_batcher import QueryBatcher
from ragloop.core.errors import InvalidInputError, PayloadTooLargeError, RagloopError
from ragloop.service.auth import check_client, presented_key
from ragloop.service.common import read_json
from ragloop.service.openai_api.shapes import error_response, validate_body
from ragloop.service.state import AppState, get_state

router = APIRouter(tags=["openai"])

#: Most inputs in one request (OpenAI's own limit).
MAX_INPUTS = 2048
#: Longest single input in characters; the model reads only its first tokens anyway.
MAX_INPUT_CHARS = 32_000
#: Most characters in one request, so one call cannot hold the CPU for minutes.
MAX_TOTAL_CHARS = 2_000_000


class EmbeddingsBody(BaseModel):
    """An embeddings request; ``model`` and ``user`` are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    input_type: Literal["document", "query"] = Field(
        "document", description="ragloop extension: which side of the model embeds the input."
    )


def check_size(raw: object) -> None:
    """Refuse oversize input before validating it item by item (413 with the limit)."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise InvalidInputError("input is an empty list; send at least one text")
    if len(items) > MAX_INPUTS:
        raise PayloadTooLargeError(
            f"input has {len(items)} items; the limit is {MAX_INPUTS} per request"
        )
    if any(isinstance(x, int | list) for x in items):
        raise InvalidInputError("token arrays are not supported; send the input as text")
    lengths = [len(x) for x in items if isinstance(x, str)]
    longest = max(lengths, default=0)
    if longest > MAX_INPUT_CHARS:
        raise PayloadTooLargeError(
            f"an input has {longest} characters; the limit is {MAX_INPUT_CHARS} per input"
        )
    if sum(lengths) > MAX_TOTAL_CHARS:
        raise PayloadTooLargeError(
            f"input has {sum(lengths)} characters in all; the limit is {MAX_TOTAL_CHARS}"
        )


def embed(state: AppState, body: EmbeddingsBody) -> dict[str, Any]:
    """Embed with the active model (read once, so every vector comes from one model)."""
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    index = state.runtime.active_index()
    embedder = index.embedder
    if body.dimensions is not None and body.dimensions > embedder.dimension:
        raise InvalidInputError(
            f"dimensions is {body.dimensions}; the model has {embedder.dimension}"
        )
    is_query = body.input_type == "query"

    def encode(batch: Sequence[str]) -> np.ndarray:
        return embedder.embed(batch, is_query=is_query)

    # One request may hold 2,048 long inputs (a minute of CPU): it goes through the query
    # batcher in slices of a few hundred tokens that wait behind waiting queries, so a query
    # waits for one slice at most. The token counts size the slices and the usage.
    counts = embedder.count_tokens(texts)
    cap = embedder.max_seq_length
    lengths = [min(n + embedder.special_tokens, cap) for n in counts]
    batcher = index.batcher or QueryBatcher(encode, max_batch=1)
    vectors = batcher.embed_bulk(texts, encode, lengths)
    if body.dimensions is not None and body.dimensions < embedder.dimension:
        # Matryoshka-style: keep the leading dimensions and re-normalise.
        vectors = vectors[:, : body.dimensions]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1.0, norms)
    vectors = vectors.astype("<f4", copy=False)
    tokens = sum(counts)
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": base64.b64encode(v.tobytes()).decode("ascii")
            if body.encoding_format == "base64"
            else v.tolist(),
        }
        for i, v in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": index.version.version,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "ragloop": {
            "model_ref": index.version.model_ref,
            "input_type": body.input_type,
            "dimension": int(vectors.shape[1]),
            "max_seq_length": embedder.max_seq_length,
        },
    }


def embed_response(state: AppState, body: EmbeddingsBody) -> JSONResponse:
    """``embed`` rendered as a response in the calling worker thread: the JSON of 2,048
    vectors takes a few hundred milliseconds to write, which must not hold the event loop
    (every other request waits on it)."""
    return JSONResponse(embed(state, body))


@router.post("/v1/embeddings")
async def embeddings(request: Request) -> JSONResponse:
    """Embeddings in OpenAI's format; ``model`` in the response is the active model version."""
    try:
        state = get_state(request)
        check_client(state, presented_key(request))
        raw = await read_json(request)
        check_size(raw.get("input"))
        body = validate_body(EmbeddingsBody, raw)
        return await run_in_threadpool(embed_response, state, body)
    except RagloopError as exc:
        return error_response(exc)

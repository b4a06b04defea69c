"""One HTTP client for ragloop's own API: the CLI's remote mode and the LangChain integration.

``RagloopClient(base_url, token)`` sends ``Authorization: Bearer <token>`` (an API key for the
query routes, ``RAGLOOP_ADMIN_TOKEN`` for ``/admin``). A failed call raises the
``ragloop.core.errors`` class of its HTTP status with the server's own message, whichever
protocol's error shape it came in; a server it cannot reach is a ``StoreError``. Tests and
embedders inject an httpx transport (``httpx.MockTransport``, an ASGI app).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

import httpx

from ragloop.core.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    RagloopError,
    StoreError,
    UnsupportedFormatError,
)

#: The error each status stands for; other 4xx are refused input and every 5xx a server that
#: cannot serve (a proxy's 502 looks like our generator's, so neither is guessed at).
ERRORS_BY_STATUS: dict[int, type[RagloopError]] = {
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedFormatError,
}


def server_message(response: httpx.Response) -> str:
    """The message of an error response: native ``{"error": {"message"}}``, OpenAI's same
    shape, DocsGPT's ``{"error": "..."}``, or the start of a non-JSON body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])
    if isinstance(error, str):
        return error
    return response.text[:500]


def error_for(response: httpx.Response) -> RagloopError:
    """The ragloop error a failed response stands for, carrying the server's message."""
    status = response.status_code
    fallback = InvalidInputError if status < 500 else StoreError
    kind = ERRORS_BY_STATUS.get(status, fallback)
    return kind(f"server answered {status}: {server_message(response)}")


class RagloopClient:
    """Calls a ragloop server's native, DocsGPT-compatible and admin routes.

    Use it as a context manager (or call ``close``) to release its connections. ``transport``
    serves the blocking methods and ``async_transport`` the ``a``-prefixed ones; both default
    to httpx's network transports.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._options: dict[str, Any] = {
            "base_url": self.base_url,
            "headers": {"Authorization": f"Bearer {token}"} if token else {},
            "timeout": timeout,
        }
        self._transport = transport
        self._async_transport = async_transport
        self._http: httpx.Client | None = None

    def __enter__(self) -> RagloopClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections (the client opens new ones if used again)."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def request(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        """One call; the decoded JSON of a success, a ragloop error otherwise."""
        if self._http is None:
            self._http = httpx.Client(transport=self._transport, **self._options)
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise StoreError(f"cannot reach {self.base_url}: {exc}") from exc
        return _checked(response)

    async def arequest(self, method: str, path: str, *, json: Any = None) -> Any:
        """``request`` without blocking the event loop."""
        # A fresh async client per call: one is bound to the event loop that first used it.
        async with httpx.AsyncClient(transport=self._async_transport, **self._options) as http:
            try:
                response = await http.request(method, path, json=json)
            except httpx.HTTPError as exc:
                raise StoreError(f"cannot reach {self.base_url}: {exc}") from exc
        return _checked(response)

    # Answers and retrieval (an API key when the server has keys).

    def query(
        self,
        question: str,
        *,
        k: int | None = None,
        filters: Mapping[str, Any] | None = None,
        generator: str | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/query``: an answer with numbered sources, its query id and miss flag."""
        body = {"question": question, "k": k, "filters": filters, "generator": generator}
        payload = {key: value for key, value in body.items() if value is not None}
        result: dict[str, Any] = self.request("POST", "/v1/query", json=payload)
        return result

    def feedback(
        self,
        query_id: str,
        rating: Literal["up", "down"],
        *,
        relevant_chunk_ids: Sequence[str] | None = None,
        relevant_document_ids: Sequence[str] | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/feedback``: rate an answer; ``down`` makes its query a miss, and the
        chunks (or each document's best chunk) it names become labelled training pairs."""
        body: dict[str, Any] = {"query_id": query_id, "rating": rating}
        if relevant_chunk_ids:
            body["relevant_chunk_ids"] = list(relevant_chunk_ids)
        if relevant_document_ids:
            body["relevant_document_ids"] = list(relevant_document_ids)
        if comment is not None:
            body["comment"] = comment
        result: dict[str, Any] = self.request("POST", "/v1/feedback", json=body)
        return result

    def search(self, question: str, k: int | None = None) -> list[dict[str, Any]]:
        """``POST /api/search``: the top chunks (text, title, source, ids, score), unlogged."""
        result: list[dict[str, Any]] = self.request(
            "POST", "/api/search", json=_search_body(question, k)
        )
        return result

    async def asearch(self, question: str, k: int | None = None) -> list[dict[str, Any]]:
        """``search`` without blocking the event loop."""
        result: list[dict[str, Any]] = await self.arequest(
            "POST", "/api/search", json=_search_body(question, k)
        )
        return result

    def embed(
        self, texts: Sequence[str], *, input_type: Literal["document", "query"] = "document"
    ) -> list[list[float]]:
        """``POST /v1/embeddings`` with the active model: one vector per text, in order."""
        body = {"input": list(texts), "input_type": input_type}
        data = self.request("POST", "/v1/embeddings", json=body)["data"]
        return [[float(x) for x in d["embedding"]] for d in sorted(data, key=lambda d: d["index"])]

    # The learning loop (the admin token).

    def retrain(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``POST /admin/retrain``: start a retrain job; returns the job."""
        result: dict[str, Any] = self.request("POST", "/admin/retrain", json=dict(options or {}))
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /admin/jobs/{id}``: a job's state, progress and result."""
        result: dict[str, Any] = self.request("GET", f"/admin/jobs/{job_id}")
        return result

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """``POST /admin/jobs/{id}/cancel``: cancel a running retrain job; returns the job."""
        result: dict[str, Any] = self.request("POST", f"/admin/jobs/{job_id}/cancel")
        return result

    def models(self) -> list[dict[str, Any]]:
        """``GET /admin/models``: model versions with status and gate scores, oldest first."""
        result: list[dict[str, Any]] = self.request("GET", "/admin/models")
        return result

    def activate_model(self, version: str) -> list[dict[str, Any]]:
        """``POST /admin/models/{version}/activate``: serve a kept version; returns the list."""
        result: list[dict[str, Any]] = self.request("POST", f"/admin/models/{version}/activate")
        return result


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise error_for(response)
    return response.json()


def _search_body(question: str, k: int | None) -> dict[str, Any]:
    # DocsGPT's field name for k is ``chunks``.
    return {"question": question} if k is None else {"question": question, "chunks": k}


__all__ = ["RagloopClient", "error_for"]

"""LangChain integration: a retriever over a ragloop server, and ragloop's embeddings.

``RagloopRetriever`` asks a running server (``POST /api/search``) for the chunks that best
match a question, so a LangChain app retrieves with ragloop's current, possibly fine-tuned
model. ``RagloopEmbeddings`` embeds either through a server's ``POST /v1/embeddings`` or in
this process with a data dir's active model. See ``docs/integrations.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever

from ragloop.core.errors import AuthError, InvalidInputError, StoreError
from ragloop.core.runtime import Runtime


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _checked(response: httpx.Response) -> Any:
    """The JSON of a successful answer; a ragloop error carrying the server's message."""
    if response.status_code < 400:
        return response.json()
    try:
        err = response.json().get("error", response.text)
        message = err.get("message", str(err)) if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError):
        message = response.text[:500]
    text = f"ragloop server answered {response.status_code}: {message}"
    if response.status_code in (401, 403):
        raise AuthError(text)
    if response.status_code < 500:
        raise InvalidInputError(text)
    raise StoreError(text)


def _documents(results: list[dict[str, Any]]) -> list[Document]:
    return [
        Document(
            page_content=r.get("text", ""),
            metadata={k: v for k, v in r.items() if k != "text"},
            id=r.get("chunk_id"),
        )
        for r in results
    ]


class RagloopRetriever(BaseRetriever):
    """Retrieves chunks from a ragloop server; metadata holds title, source, score and ids."""

    base_url: str = "http://127.0.0.1:8000"
    api_key: str | None = None
    k: int = 4
    timeout: float = 30.0

    def _payload(self, query: str) -> dict[str, Any]:
        return {"question": query, "chunks": self.k}

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        try:
            response = httpx.post(
                f"{self.base_url.rstrip('/')}/api/search",
                json=self._payload(query),
                headers=_headers(self.api_key),
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise StoreError(f"cannot reach ragloop at {self.base_url}: {exc}") from exc
        return _documents(_checked(response))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(
                    f"{self.base_url.rstrip('/')}/api/search",
                    json=self._payload(query),
                    headers=_headers(self.api_key),
                )
        except httpx.HTTPError as exc:
            raise StoreError(f"cannot reach ragloop at {self.base_url}: {exc}") from exc
        return _documents(_checked(response))


class RagloopEmbeddings(Embeddings):
    """ragloop's active embedding model, remote (``base_url``) or local (``runtime``).

    Documents are embedded document-side and queries query-side, so a query-only adapter
    trained by the learning loop applies to ``embed_query`` alone, as in ragloop itself.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        runtime: Runtime | None = None,
        batch_size: int = 256,
        timeout: float = 60.0,
    ) -> None:
        if (base_url is None) == (runtime is None):
            raise InvalidInputError("give exactly one of base_url (a server) or runtime (local)")
        self.base_url = base_url.rstrip("/") if base_url else None
        self.api_key = api_key
        self.runtime = runtime
        self.batch_size = max(1, batch_size)
        self.timeout = timeout

    @classmethod
    def from_data_dir(cls, data_dir: str | Path | None = None) -> RagloopEmbeddings:
        """Local embeddings with a data dir's active model (``RAGLOOP_*`` settings apply).

        The model follows promotions and rollbacks made by a server on the same data dir.
        """
        from ragloop.core.runtime import open_runtime
        from ragloop.core.settings import load_settings

        settings = load_settings(data_dir=Path(data_dir) if data_dir is not None else None)
        return cls(runtime=open_runtime(settings))

    def close(self) -> None:
        """Release a local runtime's catalog connections."""
        if self.runtime is not None:
            self.runtime.close()

    def _embed(self, texts: Sequence[str], is_query: bool) -> list[list[float]]:
        if not texts:
            return []
        if self.runtime is not None:
            vectors = self.runtime.active_index().embedder.embed(texts, is_query=is_query)
            return [[float(x) for x in v] for v in vectors]
        out: list[list[float]] = []
        with httpx.Client(timeout=self.timeout, headers=_headers(self.api_key)) as client:
            for start in range(0, len(texts), self.batch_size):
                batch = list(texts[start : start + self.batch_size])
                payload = {"input": batch, "input_type": "query" if is_query else "document"}
                try:
                    response = client.post(f"{self.base_url}/v1/embeddings", json=payload)
                except httpx.HTTPError as exc:
                    raise StoreError(f"cannot reach ragloop at {self.base_url}: {exc}") from exc
                data = sorted(_checked(response)["data"], key=lambda d: d["index"])
                out.extend([float(x) for x in d["embedding"]] for d in data)
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts for storage (document side)."""
        return self._embed(texts, is_query=False)

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query (query side)."""
        return self._embed([text], is_query=True)[0]


__all__ = ["RagloopEmbeddings", "RagloopRetriever"]

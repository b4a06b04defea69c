"""LangChain integration: a retriever over a ragloop server, and ragloop's embeddings.

``RagloopRetriever`` asks a running server (``POST /api/search``) for the chunks that best
match a question, so a LangChain app retrieves with ragloop's current, possibly fine-tuned
model. ``RagloopEmbeddings`` embeds either through a server's ``POST /v1/embeddings`` or in
this process with a data dir's active model. See ``docs/integrations.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever

from ragloop.client import RagloopClient
from ragloop.core.errors import InvalidInputError
from ragloop.core.runtime import Runtime


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

    def _client(self) -> RagloopClient:
        return RagloopClient(self.base_url, self.api_key, timeout=self.timeout)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        with self._client() as client:
            return _documents(client.search(query, self.k))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return _documents(await self._client().asearch(query, self.k))


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
        assert self.base_url is not None  # one of the two is set (checked in __init__)
        side: Literal["document", "query"] = "query" if is_query else "document"
        out: list[list[float]] = []
        with RagloopClient(self.base_url, self.api_key, timeout=self.timeout) as client:
            for start in range(0, len(texts), self.batch_size):
                out.extend(client.embed(texts[start : start + self.batch_size], input_type=side))
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts for storage (document side)."""
        return self._embed(texts, is_query=False)

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query (query side)."""
        return self._embed([text], is_query=True)[0]


__all__ = ["RagloopEmbeddings", "RagloopRetriever"]

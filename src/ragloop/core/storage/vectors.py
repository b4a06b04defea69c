"""The vector store interface and its Chroma implementation.

We always pass embeddings ourselves (Chroma never embeds), keep one collection per model
version, and use cosine space with HNSW parameters chosen for recall (Chroma's default search
depth loses about one true neighbour in ten; see docs/benchmarks.md for the measurement).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ragloop.core.errors import StoreError

Where = Mapping[str, str | int | float | bool]


@dataclass(frozen=True)
class HnswParams:
    """HNSW build and search parameters for new collections."""

    ef_construction: int = 200
    max_neighbors: int = 32
    ef_search: int = 128


class VectorStore(ABC):
    """Named collections of (id, vector, metadata); scores are cosine similarities."""

    @abstractmethod
    def ensure_collection(self, name: str) -> None:
        """Create the collection if it does not exist."""

    @abstractmethod
    def upsert(
        self, name: str, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[Where]
    ) -> None:
        """Insert or overwrite vectors by id."""

    @abstractmethod
    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Delete vectors by id; unknown ids are ignored."""

    @abstractmethod
    def query(
        self, name: str, vector: np.ndarray, k: int, where: Where | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` nearest ids with cosine similarity, best first."""

    @abstractmethod
    def vectors(self, name: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by id (ids not in the collection are left out)."""

    @abstractmethod
    def count(self, name: str) -> int:
        """Number of vectors in the collection (0 when it does not exist)."""

    @abstractmethod
    def ids(self, name: str) -> set[str]:
        """Every id in the collection."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """Delete the collection if it exists."""

    @abstractmethod
    def collections(self) -> list[str]:
        """Names of all collections."""


_NAME_BAD = re.compile(r"[^a-zA-Z0-9._-]+")


def collection_name(instance: str, version: str) -> str:
    """Chroma-safe collection name for a model version of one catalog instance."""
    name = _NAME_BAD.sub("-", f"rl-{instance}-{version}").strip("-._")
    return name[:120]


def chroma_where(where: Where | None) -> dict[str, Any] | None:
    """Equality filters in Chroma's syntax (several conditions need an explicit ``$and``)."""
    if not where:
        return None
    if len(where) == 1:
        return dict(where)
    return {"$and": [{k: v} for k, v in where.items()]}


class ChromaStore(VectorStore):
    """Chroma, embedded (``PersistentClient``) or client/server (``HttpClient``)."""

    def __init__(self, client: Any, hnsw: HnswParams) -> None:
        self.client = client
        self.hnsw = hnsw
        self._cache: dict[str, Any] = {}
        try:
            self.max_batch = int(client.get_max_batch_size())
        except Exception:  # older servers do not say; Chroma's documented floor is ample
            self.max_batch = 5000

    @classmethod
    def embedded(cls, path: str, hnsw: HnswParams) -> ChromaStore:
        """Embedded Chroma persisted under ``path`` (owned by this process)."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        try:
            client = chromadb.PersistentClient(
                path=path, settings=ChromaSettings(anonymized_telemetry=False)
            )
        except Exception as exc:
            raise StoreError(f"cannot open embedded Chroma at {path}: {exc}") from exc
        return cls(client, hnsw)

    @classmethod
    def remote(cls, url: str, hnsw: HnswParams) -> ChromaStore:
        """A Chroma server at ``url`` (http[s]://host:port)."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        parsed = urlparse(url)
        ssl = parsed.scheme == "https"
        try:
            client = chromadb.HttpClient(
                host=parsed.hostname or "localhost",
                port=parsed.port or (443 if ssl else 8000),
                ssl=ssl,
                settings=ChromaSettings(anonymized_telemetry=False),
            )
            client.heartbeat()
        except Exception as exc:
            raise StoreError(f"cannot reach the Chroma server at {url}: {exc}") from exc
        return cls(client, hnsw)

    def _collection(self, name: str, create: bool = False) -> Any:
        coll = self._cache.get(name)
        if coll is not None:
            return coll
        try:
            if create:
                coll = self.client.get_or_create_collection(
                    name=name,
                    embedding_function=None,
                    configuration={
                        "hnsw": {
                            "space": "cosine",
                            "ef_construction": self.hnsw.ef_construction,
                            "max_neighbors": self.hnsw.max_neighbors,
                            "ef_search": self.hnsw.ef_search,
                        }
                    },
                )
            else:
                coll = self.client.get_collection(name=name, embedding_function=None)
        except Exception as exc:
            if not create and "does not exist" in str(exc).lower():
                return None
            raise StoreError(f"Chroma collection {name}: {exc}") from exc
        self._cache[name] = coll
        return coll

    def ensure_collection(self, name: str) -> None:
        """Create the collection with our HNSW settings if it does not exist."""
        self._collection(name, create=True)

    def upsert(
        self, name: str, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[Where]
    ) -> None:
        """Upsert in slices no larger than the client's maximum batch."""
        coll = self._collection(name, create=True)
        for i in range(0, len(ids), self.max_batch):
            j = i + self.max_batch
            try:
                coll.upsert(
                    ids=list(ids[i:j]),
                    embeddings=np.ascontiguousarray(vectors[i:j], dtype=np.float32),
                    metadatas=[dict(m) for m in metadatas[i:j]],
                )
            except Exception as exc:
                raise StoreError(f"Chroma upsert into {name} failed: {exc}") from exc

    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Delete by id in slices; a missing collection means nothing to delete."""
        coll = self._collection(name)
        if coll is None or not ids:
            return
        for i in range(0, len(ids), self.max_batch):
            try:
                coll.delete(ids=list(ids[i : i + self.max_batch]))
            except Exception as exc:
                raise StoreError(f"Chroma delete from {name} failed: {exc}") from exc

    def query(
        self, name: str, vector: np.ndarray, k: int, where: Where | None = None
    ) -> list[tuple[str, float]]:
        """Nearest neighbours; cosine distance converted to similarity (1 - distance)."""
        coll = self._collection(name)
        if coll is None:
            return []
        try:
            res = coll.query(
                query_embeddings=[np.asarray(vector, dtype=np.float32)],
                n_results=k,
                where=chroma_where(where),
                include=["distances"],
            )
        except Exception as exc:
            raise StoreError(f"Chroma query on {name} failed: {exc}") from exc
        ids = res["ids"][0] if res["ids"] else []
        dists = res["distances"][0] if res.get("distances") else []
        return [(i, 1.0 - float(d)) for i, d in zip(ids, dists, strict=True)]

    def vectors(self, name: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by id, fetched in slices."""
        coll = self._collection(name)
        out: dict[str, np.ndarray] = {}
        if coll is None:
            return out
        for i in range(0, len(ids), self.max_batch):
            got = coll.get(ids=list(ids[i : i + self.max_batch]), include=["embeddings"])
            for cid, vec in zip(got["ids"], got["embeddings"], strict=True):
                out[cid] = np.asarray(vec, dtype=np.float32)
        return out

    def count(self, name: str) -> int:
        """Vectors in the collection."""
        coll = self._collection(name)
        return int(coll.count()) if coll is not None else 0

    def ids(self, name: str) -> set[str]:
        """All ids, paged so a large collection does not come back in one response."""
        coll = self._collection(name)
        if coll is None:
            return set()
        out: set[str] = set()
        offset, page = 0, 10_000
        while True:
            got = coll.get(include=[], limit=page, offset=offset)["ids"]
            out.update(got)
            if len(got) < page:
                return out
            offset += page

    def drop(self, name: str) -> None:
        """Delete a collection; absent is fine."""
        self._cache.pop(name, None)
        try:
            self.client.delete_collection(name=name)
        except Exception as exc:
            if "does not exist" not in str(exc).lower() and "not found" not in str(exc).lower():
                raise StoreError(f"cannot drop Chroma collection {name}: {exc}") from exc

    def collections(self) -> list[str]:
        """Names of every collection on this client."""
        return sorted(c if isinstance(c, str) else c.name for c in self.client.list_collections())

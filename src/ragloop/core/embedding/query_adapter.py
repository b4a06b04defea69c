"""Query-only adapters: a linear map applied to query embeddings only.

A query-only model version keeps its parent's document vectors valid, so promoting it needs no
re-embedding: documents are embedded by the parent model as before, and only questions pass
through the adapter ``q' = normalise(W q)``. The learning loop trains ``W`` (starting from the
identity); this module only applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragloop.core.embedding.base import Embedder
from ragloop.core.errors import ModelUnavailableError

ADAPTER_FILE = "query_adapter.npy"


class QueryAdapterEmbedder(Embedder):
    """The parent embedder for documents; the parent plus a linear adapter for queries."""

    def __init__(self, parent: Embedder, weight: np.ndarray, model_id: str) -> None:
        if weight.shape != (parent.dimension, parent.dimension):
            raise ModelUnavailableError(
                f"query adapter is {weight.shape}, expected {parent.dimension}x{parent.dimension}"
            )
        self.parent = parent
        self.weight = weight.astype(np.float32)
        self.model_id = model_id
        self.dimension = parent.dimension
        self.max_seq_length = parent.max_seq_length
        self.special_tokens = parent.special_tokens

    @classmethod
    def load(cls, parent: Embedder, directory: Path, model_id: str) -> QueryAdapterEmbedder:
        """Load ``query_adapter.npy`` from a model version's directory."""
        path = directory / ADAPTER_FILE
        if not path.exists():
            raise ModelUnavailableError(f"no query adapter at {path}")
        return cls(parent, np.load(path), model_id)

    def embed(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        """Documents: the parent's vectors; queries: adapted and re-normalised."""
        vecs = self.parent.embed(texts, is_query=is_query)
        if not is_query or len(vecs) == 0:
            return vecs
        out = vecs @ self.weight.T
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """The parent's tokenizer decides."""
        return self.parent.count_tokens(texts)

    @property
    def tokenizer(self) -> object:
        """The parent's tokenizer (for callers that need the raw one)."""
        return getattr(self.parent, "tokenizer", None)

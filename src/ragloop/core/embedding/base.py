"""The embedder interface and its registry.

An embedder implements one batch method, ``embed``, plus token counting (the splitter uses the
embedder's own tokenizer so no chunk is ever truncated); everything else is built on those.
Models are named in a registry: built-ins are registered explicitly by ``default_registry``,
third parties through the ``ragloop.embedders`` entry point group, tests by ``register``.
A name that is neither registered nor a local model directory fails at once, listing the known
names; nothing here ever reaches for a model hub.
"""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ragloop.core.errors import ModelUnavailableError

if TYPE_CHECKING:
    from ragloop.core.settings import Settings


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors; one abstract batch method."""

    #: A stable identifier of the weights (a name or a path).
    model_id: str
    #: Vector width.
    dimension: int
    #: Longest input in tokens, special tokens included; longer input would be truncated.
    max_seq_length: int
    #: Tokens the model adds around every input ([CLS] and [SEP] for BERT-likes).
    special_tokens: int = 2

    @abstractmethod
    def embed(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        """Embed a batch; returns an ``(len(texts), dimension)`` float32 array, rows unit length."""

    @abstractmethod
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text in the model's own tokenizer, without special tokens."""

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed chunk texts for storage."""
        return self.embed(texts, is_query=False)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query; a 1-D vector."""
        return self.embed([text], is_query=True)[0]

    @property
    def content_budget(self) -> int:
        """Most content tokens an input may have before the model would truncate it."""
        return self.max_seq_length - self.special_tokens


@dataclass(frozen=True)
class EmbedderOptions:
    """Runtime options every factory receives.

    ``backend`` defaults to ``torch`` here so that a load built by hand (tests, scripts) is the
    plain sentence-transformers path with no files written; ``from_settings`` passes
    ``RAGLOOP_BACKEND`` (default ``auto``) and the data dir, where ONNX exports are cached.
    """

    device: str = "cpu"
    precision: str = "auto"
    backend: str = "torch"
    data_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbedderOptions:
        """The options a deployment's settings ask for."""
        return cls(settings.device, settings.precision, settings.backend, settings.data_dir)


EmbedderFactory = Callable[[EmbedderOptions], Embedder]


class EmbedderRegistry:
    """Embedder factories by name, with local model directories accepted as well."""

    def __init__(self) -> None:
        self._factories: dict[str, EmbedderFactory] = {}
        self._path_loader: Callable[[Path, EmbedderOptions], Embedder] | None = None

    def register(self, name: str, factory: EmbedderFactory) -> None:
        """Register (or replace) a factory under ``name``; names are case-insensitive."""
        self._factories[name.lower()] = factory

    def set_path_loader(self, loader: Callable[[Path, EmbedderOptions], Embedder]) -> None:
        """How to load a model from a local directory (sentence-transformers by default)."""
        self._path_loader = loader

    def names(self) -> list[str]:
        """Registered names, built-ins and entry points."""
        eps = [ep.name for ep in importlib.metadata.entry_points(group="ragloop.embedders")]
        return sorted(set(self._factories) | {e.lower() for e in eps})

    def load(self, ref: str, options: EmbedderOptions | None = None) -> Embedder:
        """Build the embedder ``ref`` names: a registered name, an entry point, or a directory."""
        opts = options or EmbedderOptions()
        key = ref.lower()
        if key in self._factories:
            return self._factories[key](opts)
        for ep in importlib.metadata.entry_points(group="ragloop.embedders"):
            if ep.name.lower() == key:
                factory: EmbedderFactory = ep.load()
                return factory(opts)
        path = Path(ref).expanduser()
        if path.is_dir() and self._path_loader is not None:
            return self._path_loader(path, opts)
        known = ", ".join(self.names()) or "none"
        raise ModelUnavailableError(
            f"unknown embedder {ref!r}: not a registered name (known: {known}) and not a local "
            "model directory; set RAGLOOP_EMBEDDER to one of those, or to a directory holding a "
            "sentence-transformers model (models are never downloaded)"
        )


def default_registry() -> EmbedderRegistry:
    """A registry with the built-in embedders registered."""
    from ragloop.core.embedding import torch_embedder as st_embedder

    registry = EmbedderRegistry()
    st_embedder.register_builtins(registry)
    return registry

"""The embedder interface, its options and its registry class.

An embedder implements one batch method, ``embed``, plus token counting (the splitter uses the
embedder's own tokenizer so no chunk is ever truncated); everything else is built on those,
``embed_many`` included. Models are named in an ``EmbedderRegistry``: built-ins are registered
by ``ragloop.core.embedding.registry.default_registry``, third parties through the
``ragloop.embedders`` entry point group, tests by ``register``. A name that is neither
registered nor a local model directory fails at once, listing the known names; nothing here
ever reaches for a model hub.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ragloop.core.errors import ModelUnavailableError
from ragloop.core.progress import ProgressFn
from ragloop.core.registry import Registry

if TYPE_CHECKING:
    from ragloop.core.settings import Settings

ENTRY_POINT_GROUP = "ragloop.embedders"


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices ``0..len(lengths)-1`` shortest first, cut into batches of ``batch_size``.

    Inputs of similar length pad little when batched together. The sort is stable, so equal
    lengths keep their input order and the same input always gives the same batches.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


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
    #: The local model directory the weights were loaded from; None when there is none (fakes,
    #: adapters): what fine-tuning starts from.
    source_dir: Path | None = None

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

    def embed_many(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        progress: ProgressFn | None = None,
        *,
        is_query: bool = False,
        lengths: Sequence[int] | None = None,
        stage: str = "embedding",
    ) -> np.ndarray:
        """Embed any number of texts in length-sorted batches; rows come back in input order.

        Batches of ``batch_size`` texts of similar length (``lengths``, by default characters;
        ingest passes token counts) pad little. ``progress`` is called with ``(stage, 0,
        total)`` first and ``(stage, done, total)`` after each batch.
        """
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        sizes = [len(t) for t in texts] if lengths is None else lengths
        done = 0
        if progress:
            progress(stage, 0, len(texts))
        for idx in sorted_batches(sizes, batch_size):
            out[idx] = self.embed([texts[i] for i in idx], is_query=is_query)
            done += len(idx)
            if progress:
                progress(stage, done, len(texts))
        return out

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


class EmbedderRegistry(Registry[EmbedderFactory]):
    """Embedder factories by name, with local model directories accepted as well."""

    def __init__(self) -> None:
        super().__init__("embedder", ENTRY_POINT_GROUP)
        self._path_loader: Callable[[Path, EmbedderOptions], Embedder] | None = None

    def set_path_loader(self, loader: Callable[[Path, EmbedderOptions], Embedder]) -> None:
        """How to load a model from a local directory (the backends' ``load_model_dir``)."""
        self._path_loader = loader

    def load(self, ref: str, options: EmbedderOptions | None = None) -> Embedder:
        """Build the embedder ``ref`` names: a registered name, an entry point, or a directory."""
        opts = options or EmbedderOptions()
        factory = self.find(ref)
        if factory is not None:
            return factory(opts)
        path = Path(ref).expanduser()
        if path.is_dir() and self._path_loader is not None:
            return self._path_loader(path, opts)
        hint = (
            "nor is it a local model directory: set RAGLOOP_EMBEDDER to one of those names, or "
            "to a directory holding a sentence-transformers model (models are never downloaded)"
        )
        raise ModelUnavailableError(self.unknown(ref, hint))

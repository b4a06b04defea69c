"""Fakes behind our own interfaces, for fast unit tests."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import numpy as np

from ragloop.core.embedders import Embedder, EmbedderOptions, EmbedderRegistry

_WORD = re.compile(r"\S+")
_TOKEN = re.compile(r"[a-z0-9]+")


class KeywordEmbedder(Embedder):
    """Bag-of-keywords vectors over a fixed vocabulary: rankings are exactly predictable.

    Each vocabulary word owns one dimension; a text's vector counts its words and is
    normalised, so cosine similarity is plain keyword overlap. A token is one
    whitespace-separated word, so token counts are easy to reason about in tests. Words outside
    the vocabulary share the last dimension.
    """

    special_tokens = 2

    def __init__(
        self,
        vocabulary: Sequence[str] = (),
        max_seq_length: int = 66,
        model_id: str = "fake-keyword",
        delay: float = 0.0,
    ) -> None:
        self.vocabulary = {w: i for i, w in enumerate(dict.fromkeys(vocabulary))}
        self.dimension = len(self.vocabulary) + 1
        self.max_seq_length = max_seq_length
        self.model_id = model_id
        self.delay = delay
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        self.calls.append(len(texts))
        if self.delay:
            time.sleep(self.delay)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _TOKEN.findall(text.lower()):
                out[row, self.vocabulary.get(word, self.dimension - 1)] += 1.0
            norm = np.linalg.norm(out[row])
            if norm == 0:
                out[row, self.dimension - 1] = 1.0
            else:
                out[row] /= norm
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORD.findall(t)) for t in texts]


DEFAULT_VOCAB = (
    "scurvy vitamin citrus sailors ocean whale coral reef volcano lava magma chroma vector "
    "python snake train rail apple orange banana bread flour yeast"
).split()


def fake_registry(embedder: Embedder | None = None) -> EmbedderRegistry:
    """A registry whose ``fake-keyword`` name loads the given (or a default) fake."""
    registry = EmbedderRegistry()
    instance = embedder or KeywordEmbedder(DEFAULT_VOCAB)

    def factory(_opts: EmbedderOptions) -> Embedder:
        return instance

    registry.register("fake-keyword", factory)
    return registry

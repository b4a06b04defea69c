"""Fakes behind our own interfaces, for fast unit tests."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence

import numpy as np

from ragloop.core.embedding.base import Embedder, EmbedderOptions, EmbedderRegistry
from ragloop.core.errors import GeneratorError, InvalidInputError
from ragloop.core.generators.base import (
    NO_ANSWER_MARKER,
    Context,
    Generator,
    GeneratorFactory,
    Turn,
)
from ragloop.core.settings import Settings

_WORD = re.compile(r"\S+")
_TOKEN = re.compile(r"[a-z0-9]+")


class KeywordEmbedder(Embedder):
    """Bag-of-keywords vectors over a fixed vocabulary: rankings are exactly predictable.

    Each vocabulary word owns one dimension; a text's vector counts its words and is
    normalised, so cosine similarity is plain keyword overlap. A token is one
    whitespace-separated word, so token counts are easy to reason about in tests. Words outside
    the vocabulary are ignored; a text with none of the keywords gets the last dimension, so it
    scores 0 against every text that has some.
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
                if word in self.vocabulary:
                    out[row, self.vocabulary[word]] += 1.0
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


class FakeGenerator(Generator):
    """Answers by citing every context, or abstains, or fails like a provider would."""

    def __init__(
        self,
        name: str = "fake",
        *,
        abstain: bool = False,
        fail_after: int | None = None,
        text: str | None = None,
    ) -> None:
        self.name = name
        self.abstain = abstain
        self.fail_after = fail_after  # deltas to send before failing (0: fail at once)
        self.text = text
        self.calls: list[str] = []
        self.histories: list[list[Turn]] = []  # the history each question came with

    def stream(
        self, question: str, contexts: Sequence[Context], history: Sequence[Turn] = ()
    ) -> Iterator[str]:
        self.calls.append(question)
        self.histories.append(list(history))
        if self.abstain or not contexts:
            deltas = [NO_ANSWER_MARKER, ": nothing about that here."]
        elif self.text is not None:
            deltas = [self.text]
        else:
            deltas = [f"From {c.title} [{c.n}]. " for c in contexts]
        for i, delta in enumerate(deltas):
            if self.fail_after is not None and i >= self.fail_after:
                raise GeneratorError("fake provider: 529 overloaded")
            yield delta
        if self.fail_after is not None and self.fail_after >= len(deltas):
            raise GeneratorError("fake provider: 529 overloaded")


def fake_generator_factory(
    generators: dict[str, Generator] | None = None,
) -> GeneratorFactory:
    """A create_app generator factory: names map to the given fakes; unknown names fail."""
    table = {"extractive": FakeGenerator("extractive"), "fake": FakeGenerator("fake")}
    table.update(generators or {})

    def factory(settings: Settings, name: str | None) -> Generator:
        key = name or "fake"
        if key not in table:
            raise InvalidInputError(f"unknown generator {key!r}; known: {', '.join(table)}")
        return table[key]

    return factory

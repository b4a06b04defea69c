"""The generator interface shared by every answer generator.

A generator streams answer text for a question over numbered context chunks; ``generate`` and
abstain detection are built on that one abstract method. A generator that finds the answer is
not in the documents starts its reply with ``NO_ANSWER_MARKER``; ``AbstainFilter`` removes the
marker from what users see and records that the answer was a miss (reason ``no_answer``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragloop.core.settings import Settings

NO_ANSWER_MARKER = "NO_ANSWER"
NO_ANSWER_TEXT = "The documents do not contain the answer to this question."

# Whitespace and markup a model may put around the marker ("**NO_ANSWER**", "`NO_ANSWER`").
_DECORATION = " \t\r\n*_`\"'>#"
# What may separate the marker from its explanation ("NO_ANSWER: ...", "NO_ANSWER — ...").
_SEPARATORS = _DECORATION + ":.-\u2013\u2014"


@dataclass(frozen=True)
class Context:
    """One retrieved chunk as the generator sees it; ``n`` is its citation number ([n])."""

    n: int
    chunk_id: str
    document_id: str
    title: str
    source: str
    text: str
    score: float


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation."""

    question: str
    answer: str


@dataclass
class Answer:
    """A complete answer: its text, cited numbers, and whether it was an abstention."""

    text: str
    generator: str
    model: str | None = None
    no_answer: bool = False
    citations: list[int] = field(default_factory=list)


class Generator(ABC):
    """Turns a question and numbered contexts into an answer that cites them as [n]."""

    #: Registry name ("extractive", "anthropic", "openai").
    name: str
    #: The provider's model id, when there is one.
    model: str | None = None

    @abstractmethod
    def stream(
        self, question: str, contexts: Sequence[Context], history: Sequence[Turn] = ()
    ) -> Iterator[str]:
        """Yield the answer as text deltas. Raises GeneratorError when the provider fails."""

    def generate(
        self, question: str, contexts: Sequence[Context], history: Sequence[Turn] = ()
    ) -> Answer:
        """The whole answer at once, with the abstain marker interpreted."""
        filt = AbstainFilter()
        text = "".join(filt.feed(d) for d in self.stream(question, contexts, history))
        text += filt.close()
        return Answer(
            text=text.strip(),
            generator=self.name,
            model=self.model,
            no_answer=filt.no_answer,
            citations=cited_numbers(text, len(contexts), {c.n for c in contexts}),
        )

    def close(self) -> None:  # noqa: B027 - optional hook, deliberately not abstract
        """Release network clients; a no-op for generators that hold none."""


class LLMGenerator(Generator):
    """A generator backed by a language model, which can also complete arbitrary prompts.

    The learning loop uses ``complete`` for synthetic questions and pseudo-labels; it checks
    ``isinstance(generator, LLMGenerator)`` and falls back to offline methods otherwise.
    """

    @abstractmethod
    def complete(self, system: str, user: str, max_tokens: int) -> str:
        """One non-streaming completion of ``user`` under ``system``; raises GeneratorError."""

    def complete_short(self, system: str, user: str, max_tokens: int, timeout_s: float) -> str:
        """A short completion on the request path (rewriting a follow-up question): one call
        bounded by ``timeout_s``, not retried; raises GeneratorError.

        The built-in providers override this; a generator that does not is called through
        ``complete`` with its own timeout.
        """
        return self.complete(system, user, max_tokens)


#: Builds a generator by name (None: the configured one); ``registry.build_generator`` is one,
#: the service takes one so tests can hand it fakes.
GeneratorFactory = Callable[["Settings", str | None], Generator]


class AbstainFilter:
    """Watches a stream of deltas for a leading ``NO_ANSWER`` marker.

    Text is held back only until it is clear whether the reply starts with the marker; then
    the marker is replaced by a plain sentence and everything else passes through unchanged.
    Markdown emphasis or quotes a model may wrap the marker in (``**NO_ANSWER**``) are
    tolerated, so the abstention is detected even when the model decorates it.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._decided = False
        self._after_marker = False  # separators after the marker may still arrive
        self.no_answer = False

    def feed(self, delta: str) -> str:
        """Take a delta; return what may be shown now."""
        if self._after_marker:
            delta = delta.lstrip(_SEPARATORS)
            if not delta:
                return ""
            self._after_marker = False
            return " " + delta
        if self._decided:
            return delta
        self._buffer += delta
        head = self._buffer.lstrip(_DECORATION)
        if len(head) < len(NO_ANSWER_MARKER) and NO_ANSWER_MARKER.startswith(head):
            return ""  # could still become the marker
        return self._decide()

    def close(self) -> str:
        """End of stream: release anything held back."""
        return "" if self._decided else self._decide()

    def _decide(self) -> str:
        self._decided = True
        head = self._buffer.lstrip(_DECORATION)
        if head.startswith(NO_ANSWER_MARKER):
            self.no_answer = True
            rest = head[len(NO_ANSWER_MARKER) :].lstrip(_SEPARATORS)
            if rest:
                return f"{NO_ANSWER_TEXT} {rest}"
            self._after_marker = True
            return NO_ANSWER_TEXT
        return self._buffer


def cited_numbers(text: str, n_contexts: int, numbers: Collection[int] | None = None) -> list[int]:
    """Citation numbers [n] that appear in ``text`` and name a real context, in order.

    A number is real when it is in ``numbers`` (the contexts' ``n``) if that is given, else
    when it is between 1 and ``n_contexts``.
    """
    import re

    seen: dict[int, None] = {}
    for group in re.findall(r"\[(\d+(?:\s*,\s*\d+)*)\]", text):
        for part in group.split(","):
            n = int(part)
            if (n in numbers) if numbers is not None else 1 <= n <= n_contexts:
                seen.setdefault(n, None)
    return list(seen)


def one_line(text: str, limit: int = 200) -> str:
    """``text`` with whitespace collapsed and cut to ``limit`` characters, for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"

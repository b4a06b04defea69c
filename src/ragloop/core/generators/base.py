"""The generator interface shared by every answer generator.

A generator streams answer text for a question over numbered context chunks; ``generate`` and
abstain detection are built on that one abstract method. A generator that finds the answer is
not in the documents starts its reply with ``NO_ANSWER_MARKER``; ``AbstainFilter`` removes the
marker from what users see and records that the answer was a miss (reason ``no_answer``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

NO_ANSWER_MARKER = "NO_ANSWER"
NO_ANSWER_TEXT = "The documents do not contain the answer to this question."


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
            citations=cited_numbers(text, len(contexts)),
        )


class AbstainFilter:
    """Watches a stream of deltas for a leading ``NO_ANSWER`` marker.

    Text is held back only until it is clear whether the reply starts with the marker; then
    the marker is replaced by a plain sentence and everything else passes through unchanged.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._decided = False
        self.no_answer = False

    def feed(self, delta: str) -> str:
        """Take a delta; return what may be shown now."""
        if self._decided:
            return delta
        self._buffer += delta
        head = self._buffer.lstrip()
        if len(head) < len(NO_ANSWER_MARKER) and NO_ANSWER_MARKER.startswith(head):
            return ""  # could still become the marker
        return self._decide()

    def close(self) -> str:
        """End of stream: release anything held back."""
        return "" if self._decided else self._decide()

    def _decide(self) -> str:
        self._decided = True
        head = self._buffer.lstrip()
        if head.startswith(NO_ANSWER_MARKER):
            self.no_answer = True
            rest = head[len(NO_ANSWER_MARKER) :].lstrip(" :.-\u2014\n")
            return NO_ANSWER_TEXT + (" " + rest if rest else "")
        return self._buffer


def cited_numbers(text: str, n_contexts: int) -> list[int]:
    """Citation numbers [n] that appear in ``text`` and name a real context, in order."""
    import re

    seen: dict[int, None] = {}
    for group in re.findall(r"\[(\d+(?:\s*,\s*\d+)*)\]", text):
        for part in group.split(","):
            n = int(part)
            if 1 <= n <= n_contexts:
                seen.setdefault(n, None)
    return list(seen)

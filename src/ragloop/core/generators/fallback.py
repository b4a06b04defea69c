"""Degrading to the extractive answer when an LLM provider fails, whole or streamed.

A provider error (timeout, 429, 5xx, bad key) must never fail a query: the service answers
with the fallback generator instead and reports the provider's message as ``generator_error``.
When streaming, that is only possible while nothing has been shown yet; once the user has seen
part of the provider's answer, the stream ends cleanly where it broke and the error is
reported, without repeating text from another generator.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ragloop.core.errors import GeneratorError
from ragloop.core.generators.base import (
    AbstainFilter,
    Answer,
    Context,
    Generator,
    Turn,
    cited_numbers,
)

EMPTY_REPLY = "returned an empty answer"


def answer_with_fallback(
    primary: Generator,
    fallback: Generator,
    question: str,
    contexts: Sequence[Context],
    history: Sequence[Turn] = (),
) -> tuple[Answer, str | None]:
    """The primary's whole answer, or the fallback's when the primary fails.

    Returns ``(answer, generator_error)``. When ``primary.generate`` raises ``GeneratorError``
    or returns an empty answer, the fallback answers and ``generator_error`` is the primary's
    one-line message (it names the provider); ``answer.generator`` then names the fallback.
    Otherwise ``generator_error`` is None. Errors of the fallback itself propagate (the
    extractive generator never raises). Other exceptions are bugs and propagate too.
    """
    try:
        answer = primary.generate(question, contexts, history)
    except GeneratorError as exc:
        error = exc.message
    else:
        if answer.text or primary is fallback:
            return answer, None
        error = f"{primary.name} {EMPTY_REPLY}"
    return fallback.generate(question, contexts, history), error


class AnswerStream:
    """Display deltas of an answer, with the same degrade rules as ``answer_with_fallback``.

    Iterate it for the text to send (the abstain marker already replaced by plain words). Once
    it is exhausted, ``answer`` holds the complete ``Answer`` and ``generator_error`` the
    provider's message, if any:

    - the primary fails (``GeneratorError``) or ends empty before any text was shown: the
      fallback's answer is streamed instead, ``answer.generator`` names the fallback;
    - the primary fails after text was shown: the stream ends there, ``answer`` holds the text
      shown so far (``partial`` is True) and ``answer.generator`` names the primary.

    If the consumer stops early (a client disconnects), closing this iterator closes the
    provider's stream, and with it the HTTP response.
    """

    def __init__(
        self,
        primary: Generator,
        fallback: Generator,
        question: str,
        contexts: Sequence[Context],
        history: Sequence[Turn] = (),
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.question = question
        self.contexts = contexts
        self.history = history
        self.answer: Answer | None = None
        self.generator_error: str | None = None
        self.partial = False
        self._deltas = self._run()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._deltas)

    def close(self) -> None:
        """Stop early, closing the provider's stream."""
        _close(self._deltas)

    def _run(self) -> Iterator[str]:
        shown: list[str] = []
        filt = AbstainFilter()
        deltas: Iterator[str] = iter(())
        try:
            deltas = self.primary.stream(self.question, self.contexts, self.history)
            yield from _filtered(deltas, filt, shown)
        except GeneratorError as exc:
            self.generator_error = exc.message
            if "".join(shown).strip():
                self.partial = True
                self.answer = self._finish(self.primary, "".join(shown), filt.no_answer)
                return
        else:
            if "".join(shown).strip() or self.primary is self.fallback:
                self.answer = self._finish(self.primary, "".join(shown), filt.no_answer)
                return
            self.generator_error = f"{self.primary.name} {EMPTY_REPLY}"
        finally:
            # Closes the provider's HTTP response at once when our consumer stops early.
            _close(deltas)
        shown, filt = [], AbstainFilter()
        yield from _filtered(
            self.fallback.stream(self.question, self.contexts, self.history), filt, shown
        )
        self.answer = self._finish(self.fallback, "".join(shown), filt.no_answer)

    def _finish(self, generator: Generator, text: str, no_answer: bool) -> Answer:
        return Answer(
            text=text.strip(),
            generator=generator.name,
            model=generator.model,
            no_answer=no_answer,
            citations=cited_numbers(text, len(self.contexts), {c.n for c in self.contexts}),
        )


def stream_with_fallback(
    primary: Generator,
    fallback: Generator,
    question: str,
    contexts: Sequence[Context],
    history: Sequence[Turn] = (),
) -> AnswerStream:
    """Stream ``primary``'s answer, degrading to ``fallback``; see ``AnswerStream``."""
    return AnswerStream(primary, fallback, question, contexts, history)


def _filtered(deltas: Iterator[str], filt: AbstainFilter, shown: list[str]) -> Iterator[str]:
    """Pass ``deltas`` through the abstain filter, recording in ``shown`` what was yielded."""
    for delta in deltas:
        out = filt.feed(delta)
        if out:
            shown.append(out)
            yield out
    tail = filt.close()
    if tail:
        shown.append(tail)
        yield tail


def _close(deltas: Iterator[str]) -> None:
    close = getattr(deltas, "close", None)
    if callable(close):
        close()

"""Degrading to the extractive answer when the provider fails, whole and streamed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import httpx2

from ragloop.core.errors import GeneratorError
from ragloop.core.generators.anthropic_llm import AnthropicGenerator
from ragloop.core.generators.base import NO_ANSWER_TEXT, Context, Generator, Turn
from ragloop.core.generators.extractive import ExtractiveGenerator
from ragloop.core.generators.fallback import answer_with_fallback, stream_with_fallback
from tests.core.generators.wire import CONTEXTS, MODEL, anthropic_error

QUESTION = "What causes scurvy?"
EXTRACTIVE = "Scurvy is a disease caused by a lack of vitamin C [1]."


class Scripted(Generator):
    """Yields the given deltas, then raises GeneratorError if ``error`` is set."""

    name = "scripted"
    model = "script-1"

    def __init__(self, deltas: Sequence[str], error: str | None = None) -> None:
        self.deltas = list(deltas)
        self.error = error
        self.closed = False

    def stream(
        self, question: str, contexts: Sequence[Context], history: Sequence[Turn] = ()
    ) -> Iterator[str]:
        try:
            yield from self.deltas
            if self.error:
                raise GeneratorError(self.error)
        finally:
            self.closed = True


FALLBACK = ExtractiveGenerator()


def test_whole_answer_from_primary_when_it_works() -> None:
    answer, error = answer_with_fallback(Scripted(["Lemons [2]."]), FALLBACK, QUESTION, CONTEXTS)
    assert (answer.text, answer.generator, answer.model, error) == (
        "Lemons [2].",
        "scripted",
        "script-1",
        None,
    )


def test_whole_answer_falls_back_on_error_and_on_empty_reply() -> None:
    failing = Scripted(["half"], error="scripted API HTTP 529 (overloaded_error: Overloaded)")
    answer, error = answer_with_fallback(failing, FALLBACK, QUESTION, CONTEXTS)
    assert answer.text == EXTRACTIVE and answer.generator == "extractive"
    assert error == "scripted API HTTP 529 (overloaded_error: Overloaded)"
    answer, error = answer_with_fallback(Scripted([" "]), FALLBACK, QUESTION, CONTEXTS)
    assert answer.text == EXTRACTIVE and error == "scripted returned an empty answer"


def test_stream_fails_before_any_text_streams_the_fallback() -> None:
    stream = stream_with_fallback(Scripted([], error="boom"), FALLBACK, QUESTION, CONTEXTS)
    assert "".join(stream) == EXTRACTIVE
    assert stream.generator_error == "boom" and stream.partial is False
    assert stream.answer is not None
    assert (stream.answer.generator, stream.answer.citations) == ("extractive", [1])


def test_stream_fails_while_the_marker_is_still_held_back() -> None:
    # "NO_" was received but never shown, so the user has seen nothing: fall back.
    stream = stream_with_fallback(Scripted(["NO_"], error="cut"), FALLBACK, QUESTION, CONTEXTS)
    assert "".join(stream) == EXTRACTIVE
    assert stream.generator_error == "cut"


def test_stream_fails_mid_answer_ends_cleanly_without_duplicating() -> None:
    primary = Scripted(["Scurvy comes ", "from a lack of"], error="anthropic stream error")
    stream = stream_with_fallback(primary, FALLBACK, QUESTION, CONTEXTS)
    assert list(stream) == ["Scurvy comes ", "from a lack of"]
    assert stream.generator_error == "anthropic stream error" and stream.partial is True
    assert stream.answer is not None
    assert (stream.answer.text, stream.answer.generator) == (
        "Scurvy comes from a lack of",
        "scripted",
    )


def test_stream_success_and_abstention() -> None:
    stream = stream_with_fallback(Scripted(["A [1]", "."]), FALLBACK, QUESTION, CONTEXTS)
    assert "".join(stream) == "A [1]."
    assert stream.generator_error is None and stream.answer is not None
    assert stream.answer.citations == [1]
    abstain = Scripted(["NO_ANSWER", " Nothing on whales."])
    stream = stream_with_fallback(abstain, FALLBACK, "whales?", CONTEXTS)
    assert "".join(stream) == f"{NO_ANSWER_TEXT} Nothing on whales."
    assert stream.answer is not None and stream.answer.no_answer is True
    assert stream.generator_error is None


def test_stream_empty_reply_falls_back() -> None:
    stream = stream_with_fallback(Scripted([]), FALLBACK, QUESTION, CONTEXTS)
    assert "".join(stream) == EXTRACTIVE
    assert stream.generator_error == "scripted returned an empty answer"


def test_extractive_as_its_own_fallback_keeps_its_abstention() -> None:
    stream = stream_with_fallback(FALLBACK, FALLBACK, "Who painted the Mona Lisa?", CONTEXTS)
    text = "".join(stream)
    assert text.startswith(NO_ANSWER_TEXT)
    assert stream.answer is not None and stream.answer.no_answer is True
    assert stream.generator_error is None


def test_closing_early_closes_the_provider_stream() -> None:
    primary = Scripted(["one ", "two ", "three"])
    stream = stream_with_fallback(primary, FALLBACK, QUESTION, CONTEXTS)
    assert next(stream) == "one "
    stream.close()
    assert primary.closed is True
    assert stream.answer is None


def test_real_anthropic_failure_degrades_to_extractive() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(429, json=anthropic_error("rate_limit_error", "Too many requests"))

    claude = AnthropicGenerator(
        api_key="sk-ant",
        model=MODEL,
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    stream = stream_with_fallback(claude, FALLBACK, QUESTION, CONTEXTS)
    assert "".join(stream) == EXTRACTIVE
    assert stream.generator_error == (
        "anthropic API HTTP 429 (rate_limit_error: Too many requests)"
    )
    answer, error = answer_with_fallback(claude, FALLBACK, QUESTION, CONTEXTS)
    assert answer.generator == "extractive" and error == stream.generator_error

"""The Anthropic generator through the real SDK, with an injected ``httpx2.MockTransport``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from ragloop.core.errors import GeneratorError
from ragloop.core.generators.anthropic_llm import AnthropicGenerator
from ragloop.core.generators.base import NO_ANSWER_MARKER, NO_ANSWER_TEXT, Turn
from tests.core.generators.wire import (
    CONTEXTS,
    MODEL,
    anthropic_error,
    anthropic_events,
    anthropic_message,
    sse,
)

KEY = "sk-ant-test-key"
Handler = Callable[[httpx2.Request], httpx2.Response]


class Recorder:
    """A MockTransport handler that records requests and replays scripted responses."""

    def __init__(self, *responses: httpx2.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        reply = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def body(self, i: int = -1) -> dict[str, Any]:
        return json.loads(self.requests[i].content)


def streamed(*texts: str, complete: bool = True) -> httpx2.Response:
    return httpx2.Response(
        200,
        headers={"content-type": "text/event-stream"},
        content=sse(anthropic_events(texts, complete=complete)),
    )


def failing(status: int, kind: str, message: str, **headers: str) -> httpx2.Response:
    return httpx2.Response(status, json=anthropic_error(kind, message), headers=headers)


def make(handler: Handler, **kwargs: Any) -> AnthropicGenerator:
    options: dict[str, Any] = {"max_retries": 0, "retry_wait_s": 0.0, "timeout_s": 5.0}
    options.update(kwargs)
    return AnthropicGenerator(
        api_key=KEY,
        model=MODEL,
        max_tokens=300,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        **options,
    )


def test_stream_sends_numbered_contexts_history_and_stream_flag() -> None:
    rec = Recorder(streamed("Scurvy is caused", " by a lack of vitamin C [1]", "."))
    gen = make(rec)
    history = [Turn("What is scurvy?", "A disease [1].")]
    deltas = list(gen.stream("What causes it?", CONTEXTS, history))
    assert deltas == ["Scurvy is caused", " by a lack of vitamin C [1]", "."]

    (request,) = rec.requests
    assert request.method == "POST"
    assert request.url.path == "/v1/messages"
    assert request.headers["anthropic-version"]
    # SDK 2.x sends the key as a bearer token; older ones used x-api-key.
    assert KEY in (request.headers.get("x-api-key"), request.headers.get("authorization", "")[7:])
    body = rec.body()
    assert body["model"] == MODEL
    assert body["max_tokens"] == 300
    assert body["stream"] is True
    system = body["system"]
    assert "[1] Scurvy — docs/scurvy.md\nScurvy is a disease" in system
    assert "[2] Citrus fruit — docs/citrus.md\nCitrus fruits" in system
    assert "[3] Volcanoes — docs/volcano.md" in system
    assert NO_ANSWER_MARKER in system and "[2]" in system
    assert body["messages"] == [
        {"role": "user", "content": "What is scurvy?"},
        {"role": "assistant", "content": "A disease [1]."},
        {"role": "user", "content": "What causes it?"},
    ]


def test_generate_collects_text_and_citations() -> None:
    gen = make(Recorder(streamed("Lack of vitamin C [1]; ", "lemons prevent it [2][3].")))
    answer = gen.generate("What causes scurvy?", CONTEXTS)
    assert answer.text == "Lack of vitamin C [1]; lemons prevent it [2][3]."
    assert answer.citations == [1, 2, 3]
    assert (answer.generator, answer.model, answer.no_answer) == ("anthropic", MODEL, False)


def test_abstain_marker_split_across_deltas_is_detected_and_hidden() -> None:
    gen = make(Recorder(streamed("NO_", "ANSWER The documents", " do not mention whales.")))
    answer = gen.generate("How big are whales?", CONTEXTS)
    assert answer.no_answer is True
    assert NO_ANSWER_MARKER not in answer.text
    assert answer.text == f"{NO_ANSWER_TEXT} The documents do not mention whales."


def test_base_url_override_is_used() -> None:
    rec = Recorder(streamed("ok [1]"))
    gen = make(rec, base_url="https://llm-proxy.internal/anthropic")
    list(gen.stream("q", CONTEXTS))
    assert str(rec.requests[0].url) == "https://llm-proxy.internal/anthropic/v1/messages"


def test_complete_is_a_plain_non_streaming_call() -> None:
    rec = Recorder(httpx2.Response(200, json=anthropic_message("What causes scurvy?")))
    gen = make(rec)
    text = gen.complete("Write one question this passage answers.", "Scurvy is ...", 64)
    assert text == "What causes scurvy?"
    body = rec.body()
    assert body["system"] == "Write one question this passage answers."
    assert body["messages"] == [{"role": "user", "content": "Scurvy is ..."}]
    assert body["max_tokens"] == 64
    assert not body.get("stream")


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (401, "authentication_error", "HTTP 401 (authentication_error: invalid x-api-key)"),
        (429, "rate_limit_error", "HTTP 429 (rate_limit_error"),
        (500, "api_error", "HTTP 500 (api_error"),
        (529, "overloaded_error", "HTTP 529 (overloaded_error"),
    ],
)
def test_provider_status_errors_become_one_line_generator_errors(
    status: int, kind: str, expected: str
) -> None:
    message = "invalid x-api-key" if status == 401 else "try again\nlater"
    gen = make(Recorder(failing(status, kind, message)))
    with pytest.raises(GeneratorError) as info:
        list(gen.stream("q", CONTEXTS))
    assert expected in info.value.message
    assert "\n" not in info.value.message
    if status == 401:
        assert "ANTHROPIC_API_KEY" in info.value.message
    with pytest.raises(GeneratorError):
        gen.complete("s", "u", 16)


def test_timeout_becomes_generator_error_without_retry() -> None:
    rec = Recorder(httpx2.ReadTimeout("read timed out"))
    gen = make(rec, max_retries=3)
    with pytest.raises(GeneratorError, match=r"timed out after 5s"):
        list(gen.stream("q", CONTEXTS))
    assert len(rec.requests) == 1  # the timeout was already spent once


def test_connection_error_becomes_generator_error() -> None:
    gen = make(Recorder(httpx2.ConnectError("[Errno 111] Connection refused")))
    with pytest.raises(GeneratorError, match="could not reach the anthropic API"):
        list(gen.stream("q", CONTEXTS))


def test_one_quick_retry_on_overloaded_then_success() -> None:
    rec = Recorder(failing(529, "overloaded_error", "Overloaded"), streamed("fine [1]"))
    gen = make(rec, max_retries=1)
    assert list(gen.stream("q", CONTEXTS)) == ["fine [1]"]
    assert len(rec.requests) == 2


def test_long_retry_after_is_not_waited_for() -> None:
    rec = Recorder(failing(429, "rate_limit_error", "slow down", **{"retry-after": "30"}))
    gen = make(rec, max_retries=1)
    with pytest.raises(GeneratorError, match="429"):
        list(gen.stream("q", CONTEXTS))
    assert len(rec.requests) == 1


def test_retries_are_bounded() -> None:
    rec = Recorder(failing(500, "api_error", "boom"))
    gen = make(rec, max_retries=1)
    with pytest.raises(GeneratorError, match="500"):
        list(gen.stream("q", CONTEXTS))
    assert len(rec.requests) == 2


def test_error_event_mid_stream_raises_after_the_text_already_sent() -> None:
    events = sse(anthropic_events(["Scurvy is"], complete=False))
    events += (
        b"event: error\ndata: "
        + json.dumps(anthropic_error("overloaded_error", "Overloaded")).encode()
        + b"\n\n"
    )
    gen = make(Recorder(httpx2.Response(200, content=events)))
    seen: list[str] = []
    with pytest.raises(GeneratorError, match=r"stream error \(overloaded_error: Overloaded\)"):
        for delta in gen.stream("q", CONTEXTS):
            seen.append(delta)
    assert seen == ["Scurvy is"]


def test_stream_cut_before_message_stop_is_an_error() -> None:
    gen = make(Recorder(streamed("Scurvy is", complete=False)))
    with pytest.raises(GeneratorError, match="ended before message_stop"):
        list(gen.stream("q", CONTEXTS))


def test_garbled_stream_is_an_error() -> None:
    body = (
        sse(anthropic_events([], complete=False)) + b"event: content_block_delta\ndata: {oops\n\n"
    )
    gen = make(Recorder(httpx2.Response(200, content=body)))
    with pytest.raises(GeneratorError, match="could not be read"):
        list(gen.stream("q", CONTEXTS))


def test_closing_the_stream_early_closes_the_response() -> None:
    gen = make(Recorder(streamed("a", "b", "c")))
    deltas = gen.stream("q", CONTEXTS)
    assert next(iter(deltas)) == "a"
    deltas.close()  # type: ignore[attr-defined]
    gen.close()


class BreakingStream(httpx2.SyncByteStream):
    """A response body that sends some events, then times out like a stalled connection."""

    def __init__(self, head: bytes) -> None:
        self.head = head

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        raise httpx2.ReadTimeout("read timed out")


def test_read_timeout_mid_stream_is_reported_as_a_timeout() -> None:
    head = sse(anthropic_events(["Scurvy is"], complete=False))
    gen = make(Recorder(httpx2.Response(200, stream=BreakingStream(head))))
    seen: list[str] = []
    with pytest.raises(GeneratorError, match="timed out after 5s"):
        for delta in gen.stream("q", CONTEXTS):
            seen.append(delta)
    assert seen == ["Scurvy is"]

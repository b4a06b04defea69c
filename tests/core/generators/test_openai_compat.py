"""The OpenAI-compatible generator through real httpx with an injected ``MockTransport``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ragloop.core.errors import GeneratorError
from ragloop.core.generators.base import NO_ANSWER_TEXT, Turn
from ragloop.core.generators.openai_compat import OpenAICompatGenerator
from tests.core.generators.wire import CONTEXTS, openai_chunk, openai_completion, openai_sse

BASE = "http://llm.local:11434/v1"


class Recorder:
    def __init__(self, reply: httpx.Response | Exception) -> None:
        self.reply = reply
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply

    def body(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].content)


def make(
    reply: httpx.Response | Exception, **kwargs: Any
) -> tuple[OpenAICompatGenerator, Recorder]:
    rec = Recorder(reply)
    options: dict[str, Any] = {"base_url": BASE, "model": "llama3.1", "timeout_s": 5.0}
    options.update(kwargs)
    return OpenAICompatGenerator(transport=httpx.MockTransport(rec), **options), rec


def stream_reply(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def test_stream_posts_chat_completions_and_parses_sse_chunks() -> None:
    gen, rec = make(stream_reply(openai_sse(["Scurvy is caused", " by a lack of vitamin C [1]."])))
    history = [Turn("What is scurvy?", "A disease [1].")]
    deltas = list(gen.stream("What causes it?", CONTEXTS, history))
    assert deltas == ["Scurvy is caused", " by a lack of vitamin C [1]."]

    (request,) = rec.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/chat/completions"
    assert "authorization" not in request.headers  # no key configured, none sent
    body = rec.body()
    assert body["model"] == "llama3.1"
    assert body["stream"] is True
    assert body["max_tokens"] == 1024
    system, *rest = body["messages"]
    assert system["role"] == "system"
    assert "[1] Scurvy — docs/scurvy.md\nScurvy is a disease" in system["content"]
    assert "[2] Citrus fruit — docs/citrus.md" in system["content"]
    assert rest == [
        {"role": "user", "content": "What is scurvy?"},
        {"role": "assistant", "content": "A disease [1]."},
        {"role": "user", "content": "What causes it?"},
    ]


def test_bearer_key_is_sent_when_configured() -> None:
    gen, rec = make(stream_reply(openai_sse(["ok"])), api_key="sk-local")
    list(gen.stream("q", CONTEXTS))
    assert rec.requests[0].headers["authorization"] == "Bearer sk-local"


def test_keepalive_comments_and_role_only_chunks_are_skipped() -> None:
    body = (
        b": keep-alive\n\n"
        + f"data: {json.dumps(openai_chunk(''))}\n\n".encode()
        + openai_sse(["Lemons [2]."])
    )
    gen, _ = make(stream_reply(body))
    assert list(gen.stream("q", CONTEXTS)) == ["Lemons [2]."]


def test_abstain_through_openai_stream() -> None:
    gen, _ = make(stream_reply(openai_sse(["NO_ANSWER", ": nothing about whales."])))
    answer = gen.generate("whales?", CONTEXTS)
    assert answer.no_answer is True
    assert answer.text == f"{NO_ANSWER_TEXT} nothing about whales."
    assert answer.generator == "openai" and answer.model == "llama3.1"


def test_stream_without_done_but_with_finish_reason_is_accepted() -> None:
    gen, _ = make(stream_reply(openai_sse(["fine [1]"], done=False)))
    assert list(gen.stream("q", CONTEXTS)) == ["fine [1]"]


def test_truncated_stream_is_an_error() -> None:
    gen, _ = make(stream_reply(openai_sse(["half an"], done=False, finish=False)))
    with pytest.raises(GeneratorError, match=r"ended before \[DONE\]"):
        list(gen.stream("q", CONTEXTS))


def test_garbled_chunk_is_an_error() -> None:
    gen, _ = make(stream_reply(b"data: {not json\n\n"))
    with pytest.raises(GeneratorError, match="unreadable"):
        list(gen.stream("q", CONTEXTS))


def test_error_chunk_mid_stream_is_an_error() -> None:
    body = openai_sse(["Scurvy"], done=False, finish=False)
    body += b'data: {"error": {"message": "CUDA out of memory", "code": 500}}\n\n'
    gen, _ = make(stream_reply(body))
    seen: list[str] = []
    with pytest.raises(GeneratorError, match="CUDA out of memory"):
        for delta in gen.stream("q", CONTEXTS):
            seen.append(delta)
    assert seen == ["Scurvy"]


@pytest.mark.parametrize("status", [401, 404, 429, 500, 503])
def test_http_errors_become_generator_errors(status: int) -> None:
    reply = httpx.Response(status, json={"error": {"message": f"failure {status}", "type": "x"}})
    gen, _ = make(reply)
    with pytest.raises(GeneratorError, match=f"HTTP {status}: failure {status}") as info:
        list(gen.stream("q", CONTEXTS))
    if status == 401:
        assert "RAGLOOP_OPENAI_API_KEY" in info.value.message
    with pytest.raises(GeneratorError, match=f"HTTP {status}"):
        gen.complete("s", "u", 16)


def test_plain_text_error_body_is_reported() -> None:
    gen, _ = make(httpx.Response(502, text="Bad Gateway"))
    with pytest.raises(GeneratorError, match="HTTP 502: Bad Gateway"):
        list(gen.stream("q", CONTEXTS))


def test_timeout_and_refused_connection() -> None:
    gen, _ = make(httpx.ReadTimeout("timed out"))
    with pytest.raises(GeneratorError, match="timed out after 5s"):
        list(gen.stream("q", CONTEXTS))
    gen, _ = make(httpx.ConnectError("Connection refused"))
    with pytest.raises(GeneratorError, match=f"could not connect to {BASE}"):
        gen.complete("s", "u", 16)


def test_complete_is_non_streaming() -> None:
    gen, rec = make(httpx.Response(200, json=openai_completion("What causes scurvy?")))
    assert gen.complete("Write a question.", "Scurvy is ...", 48) == "What causes scurvy?"
    body = rec.body()
    assert body["stream"] is False
    assert body["max_tokens"] == 48
    assert body["messages"] == [
        {"role": "system", "content": "Write a question."},
        {"role": "user", "content": "Scurvy is ..."},
    ]


def test_complete_with_malformed_reply_is_an_error() -> None:
    gen, _ = make(httpx.Response(200, json={"choices": []}))
    with pytest.raises(GeneratorError, match="unreadable"):
        gen.complete("s", "u", 16)


def test_base_url_with_trailing_slash() -> None:
    gen, rec = make(stream_reply(openai_sse(["x"])), base_url=BASE + "/")
    list(gen.stream("q", CONTEXTS))
    assert str(rec.requests[0].url) == f"{BASE}/chat/completions"
    gen.close()

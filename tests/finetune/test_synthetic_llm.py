"""Synthetic questions from Claude through the real Anthropic SDK with an injected transport."""

import json
from pathlib import Path

import httpx2

from ragloop.core.generators.anthropic_llm import AnthropicGenerator
from ragloop.core.runtime import Runtime
from ragloop.finetune.synthetic import SyntheticQuestions
from ragloop.ingest.pipeline import Ingestor
from tests.core.generators.wire import anthropic_message
from tests.ingest.samples import write_corpus


def test_llm_questions_are_asked_once_per_chunk(fake_runtime: Runtime, tmp_path: Path) -> None:
    Ingestor(fake_runtime).ingest([write_corpus(tmp_path / "docs")])
    chunks = [c for b in fake_runtime.catalog.iter_chunks() for c in b][:3]
    requests: list[dict] = []  # type: ignore[type-arg]

    def handler(request: httpx2.Request) -> httpx2.Response:
        requests.append(json.loads(request.content))
        n = len(requests)
        reply = f"1. What is question {n}a?\n2. What is question {n}b?\n3. Why question {n}c?"
        return httpx2.Response(200, json=anthropic_message(reply))

    llm = AnthropicGenerator(
        api_key="sk-test",
        model="claude-sonnet-5-5",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    gen = SyntheticQuestions(fake_runtime.catalog.engine, llm, 3)
    out = gen.for_chunks(chunks)
    assert gen.method == "llm:anthropic:claude-sonnet-5-5"
    assert len(requests) == 3
    body = requests[0]
    assert body["model"] == "claude-sonnet-5-5"
    assert "stand alone" in body["system"]
    assert chunks[0].text in body["messages"][0]["content"]
    assert "Write 3 questions" in body["messages"][0]["content"]
    assert out[chunks[0].id] == ["What is question 1a?", "What is question 1b?", "Why question 1c?"]
    # a second run asks nothing: every chunk is cached by its content-hash id
    again = SyntheticQuestions(fake_runtime.catalog.engine, llm, 3)
    assert again.for_chunks(chunks) == out
    assert len(requests) == 3 and again.cached == 3


def test_provider_failure_skips_the_chunk(fake_runtime: Runtime, tmp_path: Path) -> None:
    Ingestor(fake_runtime).ingest([write_corpus(tmp_path / "docs")])
    chunks = [c for b in fake_runtime.catalog.iter_chunks() for c in b][:2]

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            500, json={"type": "error", "error": {"type": "api_error", "message": "boom"}}
        )

    llm = AnthropicGenerator(
        api_key="sk-test",
        model="m",
        retry_wait_s=0.0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    gen = SyntheticQuestions(fake_runtime.catalog.engine, llm, 3)
    assert gen.for_chunks(chunks) == {} and gen.failed == 2

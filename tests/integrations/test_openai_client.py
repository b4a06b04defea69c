"""The official ``openai`` package against a live ragloop: chat (streamed and not), models,
embeddings, and the documented snippet."""

from __future__ import annotations

import base64
import contextlib
import io
import json

import numpy as np
import openai
import pytest

from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder
from tests.integrations.conftest import Live
from tests.integrations.live import KEY, snippet

QUESTION = [{"role": "user", "content": "What causes scurvy?"}]


def _client(live: Live, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0)


def test_the_documented_snippet_runs(live: Live) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(snippet("openai-python", live.url), {})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("From Scurvy")
    assert lines[1].startswith("sources: ['Scurvy")
    assert lines[2].strip() == lines[0]  # the streamed text is the same answer
    assert lines[3] == f"{len(DEFAULT_VOCAB) + 1} dimensions from model base"


def test_chat_completion_with_sources_history_and_conversation(live: Live) -> None:
    client = _client(live)
    reply = client.chat.completions.create(
        model="anything",
        messages=[
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": "Tell me about whales"},
            {"role": "assistant", "content": "They live in the ocean."},
            {"role": "user", "content": [{"type": "text", "text": "What causes scurvy?"}]},
        ],
    )
    assert reply.object == "chat.completion" and reply.model == "ragloop"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    ext = reply.model_extra["docsgpt"]  # type: ignore[index]
    assert ext["sources"][0]["title"].startswith("Scurvy") and ext["tool_calls"] == []
    logged = live.querylog.get(reply.model_extra["ragloop"]["query_id"])  # type: ignore[index]
    assert logged.question == "What causes scurvy?"
    assert logged.conversation_id == ext["conversation_id"]

    follow = client.chat.completions.create(
        model="ragloop",
        messages=[{"role": "user", "content": "and volcano lava?"}],
        extra_body={"docsgpt": {"conversation_id": ext["conversation_id"]}},
    )
    assert follow.model_extra["docsgpt"]["conversation_id"] == ext["conversation_id"]  # type: ignore[index]
    assert follow.choices[0].message.content.startswith("From volcano [1].")  # type: ignore[union-attr]


def test_streamed_chat_carries_sources_on_an_empty_delta_and_ends_with_done(live: Live) -> None:
    client = _client(live)
    chunks = list(
        client.chat.completions.create(
            model="ragloop",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len(
        {c.id for c in chunks}
    ) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    sources = [
        c for c in chunks if (c.model_extra or {}).get("docsgpt", {}).get("type") == "source"
    ]
    assert len(sources) == 1
    delta = sources[0].choices[0].delta
    assert delta.content is None and delta.role is None
    assert sources[0].model_extra["docsgpt"]["sources"][0]["title"].startswith("Scurvy")  # type: ignore[index]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("From Scurvy")
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] == "stop" and set(finish[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0

    with client.chat.completions.with_streaming_response.create(
        model="ragloop", messages=QUESTION, stream=True
    ) as raw:
        lines = [line for line in raw.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[-2][6:])["choices"][0]["finish_reason"] == "stop"


def test_models_and_embeddings(live: Live) -> None:
    client = _client(live)
    assert [m.id for m in client.models.list()] == ["ragloop", "base"]
    texts = ["whale ocean", "lava and magma", "nothing known here"]
    expected = KeywordEmbedder(DEFAULT_VOCAB).embed(texts)
    got = client.embeddings.create(model="ragloop", input=texts)  # the client asks for base64
    assert got.model == "base" and [d.index for d in got.data] == [0, 1, 2]
    assert np.allclose([d.embedding for d in got.data], expected, atol=1e-6)
    assert got.usage.prompt_tokens == 8  # whitespace words, the fake's tokenizer

    floats = client.embeddings.create(
        model="x", input="whale ocean", encoding_format="float", extra_body={"input_type": "query"}
    )
    assert np.allclose(floats.data[0].embedding, expected[0], atol=1e-6)
    short = client.embeddings.create(model="x", input="whale ocean", dimensions=14)
    assert len(short.data[0].embedding) == 14
    raw = client.embeddings.with_raw_response.create(
        model="x", input="lava", encoding_format="base64"
    )
    vector = np.frombuffer(
        base64.b64decode(raw.http_response.json()["data"][0]["embedding"]), "<f4"
    )
    assert np.allclose(vector, KeywordEmbedder(DEFAULT_VOCAB).embed(["lava"])[0])


def test_client_errors(live: Live) -> None:
    with pytest.raises(openai.AuthenticationError) as bad_key:
        _client(live, "wrong").chat.completions.create(model="ragloop", messages=QUESTION)
    assert bad_key.value.status_code == 401 and "Invalid API key." in str(bad_key.value)
    client = _client(live)
    with pytest.raises(openai.APIStatusError) as too_many:
        client.embeddings.create(model="ragloop", input=["word"] * 2049)
    assert too_many.value.status_code == 413 and "2048" in str(too_many.value)
    with pytest.raises(openai.BadRequestError) as no_user:
        client.chat.completions.create(
            model="ragloop", messages=[{"role": "system", "content": "x"}]
        )
    assert "role 'user'" in str(no_user.value)

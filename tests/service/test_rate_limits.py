"""Per-caller rate and size limits: token buckets per API key (per client address when
anonymous), a 429 with ``Retry-After`` in every protocol's own error shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ragloop.core.errors import ConfigError
from ragloop.core.settings import Settings, load_settings
from ragloop.service.limits import RateLimiter, rates
from tests.service.conftest import WRITER, ClientFactory


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limited(r: Any) -> int:
    """The 429's ``Retry-After`` seconds (checked to be a positive integer)."""
    assert r.status_code == 429, r.text
    seconds = int(r.headers["retry-after"])
    assert seconds >= 1
    return seconds


def _upload(client: TestClient, name: str, **headers: str) -> Any:
    files = [("files", (name, f"# {name}\n\nA note about apples.".encode(), "text/markdown"))]
    return client.post("/v1/documents", files=files, headers=headers or WRITER)


def test_a_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    limits = rates(Settings(rate_limit_per_minute=6, embed_bytes_per_minute=600))
    limiter = RateLimiter(limits, clock=clock)
    for _ in range(6):
        assert limiter.take("key a", {"requests": 1}) == (0.0, None)
    wait, rate = limiter.take("key a", {"requests": 1})
    assert rate is not None and rate.setting == "RAGLOOP_RATE_LIMIT_PER_MINUTE"
    assert wait == pytest.approx(10.0)  # 6 a minute: one every 10 s
    assert limiter.take("key b", {"requests": 1}) == (0.0, None)  # callers do not share
    clock.now += 10
    assert limiter.take("key a", {"requests": 1}) == (0.0, None)
    # A charge over a whole bucket passes on a full bucket and is owed afterwards.
    assert limiter.take("key c", {"embed_bytes": 1500}) == (0.0, None)
    wait, _ = limiter.take("key c", {"embed_bytes": 1})
    assert wait == pytest.approx(90.1)  # 901 bytes owed at 10 bytes a second
    # All or nothing: a refused charge takes nothing from the other buckets.
    clock.now += 1000
    limiter.take("key d", {"requests": 6})
    assert limiter.take("key d", {"requests": 1, "embed_bytes": 600})[1] is not None
    assert limiter.take("key d", {"embed_bytes": 600}) == (0.0, None)


def test_limits_are_settings_validated_at_start_up() -> None:
    s = Settings()
    assert (s.rate_limit_per_minute, s.write_rate_limit_per_minute) == (0, 30)
    assert s.embed_rate_limit_per_minute > 0 and s.embed_bytes_per_minute > 0
    assert set(rates(s)) == {"writes", "embed_requests", "embed_bytes"}  # 0 is off
    with pytest.raises(ConfigError, match="RAGLOOP_WRITE_RATE_LIMIT_PER_MINUTE"):
        load_settings(write_rate_limit_per_minute=-1)


def test_writes_are_limited_per_client_address(make_client: ClientFactory) -> None:
    client = make_client(write_rate_limit_per_minute=2)
    assert _upload(client, "a.md").status_code == 202
    # Another credential header does not make an anonymous caller someone else.
    assert _upload(client, "b.md", **{"X-API-Key": "anything-else"}).status_code == 202
    refused = _upload(client, "c.md")
    assert _limited(refused) <= 30  # 2 a minute: a token every 30 s
    message = refused.json()["error"]["message"]
    assert "RAGLOOP_WRITE_RATE_LIMIT_PER_MINUTE" in message and "2" in message
    assert refused.json()["error"]["code"] == "rate_limited"
    # DocsGPT's upload answers in its own shape, with the same header.
    docsgpt = client.post(
        "/api/upload", files=[("file", ("d.md", b"# d\n\ntext", "text/markdown"))], headers=WRITER
    )
    _limited(docsgpt)
    assert docsgpt.json()["success"] is False and "rate limit" in docsgpt.json()["message"]
    # Deletes are writes too.
    _limited(client.delete("/v1/documents/nope", headers=WRITER))
    # Reads are not writes, and another address has its own bucket.
    assert client.get("/v1/documents").status_code == 200
    other = TestClient(client.app, client=("10.0.0.2", 4242))
    assert _upload(other, "e.md").status_code == 202


def test_the_admin_token_is_not_limited(make_client: ClientFactory) -> None:
    client = make_client(write_rate_limit_per_minute=1, admin_token="t", open_writes=False)
    admin = {"Authorization": "Bearer t"}
    for name in ("a.md", "b.md", "c.md"):
        assert _upload(client, name, **admin).status_code == 202


def test_requests_are_limited_per_key_in_every_protocol(make_client: ClientFactory) -> None:
    client = make_client(api_keys="ka,kb", rate_limit_per_minute=3)
    a, b = {"X-API-Key": "ka"}, {"X-API-Key": "kb"}
    assert client.post("/v1/query", json={"question": "whale"}, headers=a).status_code == 200
    # A key sent in a DocsGPT body counts as that key.
    assert (
        client.post("/api/answer", json={"question": "whale", "api_key": "ka"}).status_code == 200
    )
    # A wrong key is refused by auth and costs the key nothing.
    assert (
        client.post("/v1/query", json={"question": "x"}, headers={"X-API-Key": "bad"}).status_code
        == 401
    )
    assert client.post("/v1/query", json={"question": "whale"}, headers=a).status_code == 200

    native = client.post("/v1/query", json={"question": "whale"}, headers=a)
    assert _limited(native) <= 20
    assert "API key env-0" in native.json()["error"]["message"]
    assert "RAGLOOP_RATE_LIMIT_PER_MINUTE" in native.json()["error"]["message"]
    answer = client.post("/api/answer", json={"question": "whale", "api_key": "ka"})
    _limited(answer)
    assert set(answer.json()) == {"error"} and "rate limit" in answer.json()["error"]
    stream = client.post("/stream", json={"question": "whale", "api_key": "ka"})
    _limited(stream)
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert json.loads(stream.text.strip().removeprefix("data: "))["type"] == "error"
    chat = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}, headers=a
    )
    _limited(chat)
    assert chat.json()["error"]["code"] == "rate_limited"
    feedback = client.post("/v1/feedback", json={"query_id": "x", "rating": "up"}, headers=a)
    _limited(feedback)
    # The other key is untouched.
    assert client.post("/v1/query", json={"question": "whale"}, headers=b).status_code == 200


def test_embeddings_are_limited_by_requests_and_by_bytes(make_client: ClientFactory) -> None:
    client = make_client(embed_bytes_per_minute=4000, embed_rate_limit_per_minute=3)
    big = {"input": ["whale " * 300]}  # ~1.8 kB of JSON
    assert client.post("/v1/embeddings", json=big).status_code == 200
    assert client.post("/v1/embeddings", json=big).status_code == 200
    refused = client.post("/v1/embeddings", json=big)
    _limited(refused)
    assert "RAGLOOP_EMBED_BYTES_PER_MINUTE" in refused.json()["error"]["message"]
    assert refused.json()["error"]["type"] == "invalid_request_error"  # OpenAI's shape
    # Small requests count against the request limit.
    other = TestClient(client.app, client=("10.0.0.3", 1))
    for _ in range(3):
        assert other.post("/v1/embeddings", json={"input": "whale"}).status_code == 200
    small = other.post("/v1/embeddings", json={"input": "whale"})
    _limited(small)
    assert "RAGLOOP_EMBED_RATE_LIMIT_PER_MINUTE" in small.json()["error"]["message"]
    # Queries from that address are not embeddings.
    assert other.post("/v1/query", json={"question": "whale"}).status_code == 200


def test_zero_turns_a_limit_off(make_client: ClientFactory) -> None:
    client = make_client(rate_limit_per_minute=0, embed_rate_limit_per_minute=0)
    for _ in range(40):
        assert client.post("/v1/embeddings", json={"input": "whale"}).status_code == 200


def test_a_body_refused_as_too_large_costs_no_budget(make_client: ClientFactory) -> None:
    client = make_client(embed_bytes_per_minute=4000, max_body_bytes=2048)
    huge = client.post("/v1/embeddings", json={"input": ["whale " * 2000]})
    assert huge.status_code == 413
    for _ in range(2):
        assert client.post("/v1/embeddings", json={"input": ["whale " * 300]}).status_code == 200

"""OpenAI-compatible routes through the test client: shapes, limits and errors."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from ragloop.core.errors import StoreError
from ragloop.service.openai_api.embeddings import MAX_INPUT_CHARS, MAX_INPUTS
from tests.service.conftest import BOTH_CATALOGS, ClientFactory

pytestmark = BOTH_CATALOGS


def chunks(text: str) -> list[Any]:
    blocks = [b[len("data: ") :] for b in text.strip().split("\n\n")]
    assert blocks[-1] == "[DONE]"
    return [json.loads(b) for b in blocks[:-1]]


def test_chat_request_errors_are_openai_shaped(make_client: ClientFactory) -> None:
    client = make_client(api_keys="k1")
    auth = {"Authorization": "Bearer k1"}
    cases: list[tuple[Any, int, str]] = [
        ({}, 400, "messages: Field required"),
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "role 'user'"),
        ({"messages": [{"role": "user", "content": " "}]}, 400, "question is empty"),
        ({"messages": "hello"}, 400, "messages"),
    ]
    for body, status, message in cases:
        r = client.post("/v1/chat/completions", json=body, headers=auth)
        assert r.status_code == status, (body, r.text)
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and message in err["message"], err
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers=auth).json()["data"][0]["id"] == "ragloop"


def test_stream_without_usage_and_an_in_band_error(client: TestClient) -> None:
    body = {"stream": True, "messages": [{"role": "user", "content": "whale"}]}
    events = chunks(client.post("/v1/chat/completions", json=body).text)
    assert all("usage" not in e for e in events)
    assert [e["docsgpt"]["type"] for e in events if "docsgpt" in e] == ["source", "id"]
    assert events[-1]["ragloop"]["miss"] is False

    def broken(req: Any, sides: Any = None) -> Any:
        raise StoreError("chroma went away")

    client.app.state.rl.answerer.retrieve = broken  # type: ignore[attr-defined]
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert chunks(r.text)[-1] == {
        "error": {"message": "chroma went away", "type": "server_error", "code": None}
    }
    plain = client.post("/v1/chat/completions", json=body | {"stream": False})
    assert plain.status_code == 503 and plain.json()["error"]["type"] == "server_error"


def test_embeddings_limits(client: TestClient) -> None:
    def post(body: Any) -> Any:
        return client.post("/v1/embeddings", json=body)

    too_many = post({"input": ["a"] * (MAX_INPUTS + 1)})
    assert too_many.status_code == 413 and str(MAX_INPUTS) in too_many.json()["error"]["message"]
    too_long = post({"input": "a" * (MAX_INPUT_CHARS + 1)})
    assert (
        too_long.status_code == 413 and str(MAX_INPUT_CHARS) in too_long.json()["error"]["message"]
    )
    too_much = post({"input": ["a" * MAX_INPUT_CHARS] * 70})
    assert too_much.status_code == 413 and "in all" in too_much.json()["error"]["message"]
    assert post({"input": [1, 2, 3]}).json()["error"]["message"].startswith("token arrays")
    assert post({"input": []}).status_code == 400
    assert post({}).status_code == 400
    assert "the model has 24" in post({"input": "x", "dimensions": 99}).json()["error"]["message"]
    assert post({"input": "x", "encoding_format": "hex"}).status_code == 400
    assert post({"input": "x", "input_type": "passage"}).status_code == 400
    ok = post({"input": "whale", "input_type": "query", "user": "ignored"}).json()
    assert ok["ragloop"]["input_type"] == "query" and len(ok["data"][0]["embedding"]) == 24

"""DocsGPT-compatible answer routes: /stream, /api/answer, /api/search, /api/feedback."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from ragloop.core.errors import StoreError
from ragloop.core.generators.base import Turn
from tests.fakes import FakeGenerator
from tests.service.conftest import BOTH_CATALOGS, ClientFactory

pytestmark = BOTH_CATALOGS


def events(text: str) -> list[dict[str, Any]]:
    blocks = text.strip().split("\n\n")
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks), text  # no id:/event:
    return [json.loads(b[len("data: ") :]) for b in blocks]


def state(client: TestClient) -> Any:
    return client.app.state.rl  # type: ignore[attr-defined]


def test_stream_events_and_conversation(make_client: ClientFactory) -> None:
    gen = FakeGenerator("fake")
    client = make_client({"fake": gen})
    r = client.post("/stream", json={"question": "whale ocean", "chunks": "2", "model": "default"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = events(r.text)
    assert [e["type"] for e in evs] == ["source", "answer", "answer", "id", "end"]
    first = evs[0]["source"][0]
    assert set(first) == {"text", "title", "source", "filename", "score"}
    assert (first["title"], first["source"], first["filename"]) == (
        "Whales",
        "corpus.jsonl#w1",
        "corpus.jsonl#w1",
    )
    cid = evs[3]["id"]
    [logged], _ = state(client).querylog.find()
    assert logged.conversation_id == cid and logged.k == 2
    assert logged.answer == "".join(e["answer"] for e in evs[1:3]).strip()

    # continuing: earlier turns come from the log, a sent history is ignored
    history = json.dumps([{"prompt": "ignored", "response": "ignored"}])
    again = events(
        client.post(
            "/stream", json={"question": "lava", "conversation_id": cid, "history": history}
        ).text
    )
    assert again[-2] == {"type": "id", "id": cid}
    assert gen.histories[-1] == [Turn("whale ocean", logged.answer)]


def test_history_starts_a_new_conversation(make_client: ClientFactory) -> None:
    gen = FakeGenerator("fake")
    client = make_client({"fake": gen})
    widget_history = [
        {"prompt": "what is a whale", "response": "An ocean animal."},
        {"prompt": "and lava?"},  # the widget's current, unanswered question
    ]
    body = {"question": "and lava?", "history": json.dumps(widget_history)}
    r = client.post("/api/answer", json=body)
    assert r.status_code == 200
    assert gen.histories[-1] == [Turn("what is a whale", "An ocean animal.")]
    unknown = client.post("/api/answer", json=body | {"conversation_id": "not-seen-before"})
    assert unknown.json()["conversation_id"] == "not-seen-before"
    assert gen.histories[-1] == [Turn("what is a whale", "An ocean animal.")]


def test_source_event_is_sent_even_when_nothing_is_found(client: TestClient) -> None:
    for doc in state(client).runtime.catalog.list_documents():
        state(client).ingest.delete(doc.id)
    evs = events(client.post("/stream", json={"question": "whale"}).text)
    assert evs[0] == {"type": "source", "source": []}
    assert evs[-1] == {"type": "end"}


def test_stream_errors_are_sse_events(make_client: ClientFactory) -> None:
    client = make_client(api_keys="k1")
    cases = [
        ({"api_key": "k1"}, 400, "Missing required fields: question"),
        ({"question": "whale", "api_key": "nope"}, 401, "Invalid API key."),
        ({"question": "whale"}, 401, "an API key is required"),
        ({"question": " ", "api_key": "k1"}, 400, "question is empty"),
        ({"question": "whale", "chunks": "many", "api_key": "k1"}, 400, "chunks must be"),
        ({"question": "whale", "history": "[{", "api_key": "k1"}, 400, "history must be"),
        ({"question": 3, "api_key": "k1"}, 400, "question must be a string"),
    ]
    for body, status, message in cases:
        r = client.post("/stream", json=body)
        assert r.status_code == status, (body, r.text)
        [ev] = events(r.text)
        assert ev["type"] == "error" and message in ev["error"], (body, ev)
    broken = client.post("/stream", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and events(broken.text)[0]["type"] == "error"
    ok = client.post("/stream", json={"question": "whale", "api_key": "k1", "surprise": [1]})
    assert events(ok.text)[-1] == {"type": "end"}  # unknown fields are ignored
    header = client.post("/stream", json={"question": "whale"}, headers={"X-API-Key": "k1"})
    assert header.status_code == 200


def test_failure_after_the_stream_began_is_an_error_event(client: TestClient) -> None:
    def broken(req: Any, sides: Any = None) -> Any:
        raise StoreError("chroma went away")

    state(client).answerer.retrieve = broken
    r = client.post("/stream", json={"question": "whale"})
    assert r.status_code == 200
    assert events(r.text) == [{"type": "error", "error": "chroma went away"}]


def test_answer_shape_chunks_and_errors(make_client: ClientFactory) -> None:
    client = make_client(api_keys="k1", default_k=2, max_k=3)
    r = client.post("/api/answer", json={"question": "volcano lava", "api_key": "k1"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"conversation_id", "answer", "sources", "tool_calls", "thought", "ragloop"}
    assert body["answer"].startswith("From volcano [1].")
    assert len(body["sources"]) == 2  # RAGLOOP_DEFAULT_K
    assert body["tool_calls"] == [] and body["thought"] == ""
    logged = state(client).querylog.get(body["ragloop"]["query_id"])
    assert logged.conversation_id == body["conversation_id"] and logged.client == "env-0"
    for chunks, k in ((0, 1), (99, 3), ("3", 3), (2.0, 2)):
        body = {"question": "lava", "api_key": "k1", "chunks": chunks}
        assert len(client.post("/api/answer", json=body).json()["sources"]) == k, chunks

    assert client.post("/api/answer", json={"question": "x", "api_key": "bad"}).json() == {
        "error": "Invalid API key."
    }
    missing = client.post("/api/answer", json={"api_key": "k1"})
    assert missing.status_code == 400
    assert missing.json() == {"error": "Missing required fields: question"}
    too_long = client.post("/api/answer", json={"question": "x" * 2001, "api_key": "k1"})
    assert too_long.status_code == 400 and "2000" in too_long.json()["error"]
    listing = client.post("/api/answer", json=[1], headers={"X-API-Key": "k1"})
    assert (
        listing.status_code == 400 and listing.json()["error"] == "the body must be a JSON object"
    )


def test_search_returns_chunks_without_logging(client: TestClient) -> None:
    r = client.post("/api/search", json={"question": "bread flour", "chunks": 2})
    assert r.status_code == 200
    results = r.json()
    # the page's <title>, then the section (its <h1>) the chunk comes from
    assert len(results) == 2 and results[0]["title"] == "Bread > Baking bread"
    assert results[0]["text"] == "# Baking bread\n\nBread needs flour and yeast."
    assert {"text", "title", "source", "chunk_id", "document_id", "score"} == set(results[0])
    assert state(client).querylog.find()[1] == 0
    assert client.post("/api/search", json={}).json() == {
        "error": "Missing required fields: question"
    }


def test_feedback_marks_the_right_question_a_miss(make_client: ClientFactory) -> None:
    client = make_client()
    first = client.post("/api/answer", json={"question": "whale"}).json()
    cid = first["conversation_id"]
    second = client.post("/api/answer", json={"question": "lava", "conversation_id": cid}).json()
    log = state(client).querylog

    def send(feedback: str | None, index: int = 1) -> Any:
        body = {"feedback": feedback, "conversation_id": cid, "question_index": index}
        return client.post("/api/feedback", json=body)

    assert send("DISLIKE").json() == {"success": True}
    assert log.get(second["ragloop"]["query_id"]).miss_reasons == ["negative_feedback"]
    assert log.get(first["ragloop"]["query_id"]).miss is False
    assert send("DISLIKE").status_code == 200  # a repeated click changes nothing
    assert log.find(reason="negative_feedback")[1] == 1
    send("LIKE")
    assert log.get(second["ragloop"]["query_id"]).miss is False
    send("dislike", index=0)  # DocsGPT lower-cases; either case is accepted
    assert log.get(first["ragloop"]["query_id"]).miss_reasons == ["negative_feedback"]
    send(None, index=0)
    assert log.get(first["ragloop"]["query_id"]).miss is False

    unknown = send("LIKE", index=7)
    assert unknown.status_code == 404 and unknown.json()["success"] is False
    assert "question number 7" in unknown.json()["message"]
    null_index = client.post(
        "/api/feedback", json={"feedback": "LIKE", "conversation_id": cid, "question_index": None}
    )
    assert null_index.status_code == 400 and "question_index" in null_index.json()["error"]
    bad = send("MEH")
    assert bad.status_code == 400 and "LIKE" in bad.json()["error"]
    missing = client.post("/api/feedback", json={"feedback": "LIKE"})
    assert missing.status_code == 400
    assert missing.json()["message"] == "Missing required fields: conversation_id, question_index"


def test_conversations_belong_to_their_key(make_client: ClientFactory) -> None:
    client = make_client(api_keys="ka,kb")
    cid = client.post("/api/answer", json={"question": "whale", "api_key": "ka"}).json()[
        "conversation_id"
    ]
    body = {"feedback": "DISLIKE", "conversation_id": cid, "question_index": 0}
    assert client.post("/api/feedback", json=body | {"api_key": "kb"}).status_code == 404
    assert client.post("/api/feedback", json=body | {"api_key": "ka"}).status_code == 200
    assert client.post("/api/feedback", json=body | {"api_key": "kc"}).json()["error"] == (
        "Invalid API key."
    )


def test_cors_preflight_for_the_widget(make_client: ClientFactory) -> None:
    client = make_client(cors_origins="http://docs.example")
    for path in ("/stream", "/api/feedback"):
        r = client.options(
            path,
            headers={
                "Origin": "http://docs.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "http://docs.example"
    r = client.post(
        "/stream", json={"question": "whale"}, headers={"Origin": "http://docs.example"}
    )
    assert r.headers["access-control-allow-origin"] == "http://docs.example"

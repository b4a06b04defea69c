"""One user's bad request never hurts another's: edge checks of text and numbers on every
protocol, body size limits before parsing, large embedding requests that do not stall queries,
feedback only on your own queries, retrain datasets only from their root, and generator names
checked against the server."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import update
from starlette.types import Message, Receive, Scope, Send

from ragloop.core.settings import Settings
from ragloop.core.storage.locks import WriterLock
from ragloop.core.storage.schema import queries
from ragloop.service.app import create_app
from ragloop.service.limits import BodyLimit, size_text
from ragloop.service.openai_api import embeddings as embeddings_api
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder, fake_registry
from tests.service.conftest import WRITER, ClientFactory

#: A JSON body whose ``question`` holds a lone UTF-16 surrogate (json.loads accepts it).
SURROGATE = "x \\ud800"
JSON = {"content-type": "application/json"}


def raw(client: TestClient, path: str, body: str, **headers: str) -> Any:
    """POST a body exactly as written (TestClient's ``json=`` cannot carry a surrogate)."""
    return client.post(path, content=body.encode(), headers=JSON | headers)


def message_of(r: Any) -> str:
    """The error message, whatever the protocol's shape."""
    if r.headers["content-type"].startswith("text/event-stream"):
        [block] = r.text.strip().split("\n\n")
        return str(json.loads(block.removeprefix("data: "))["error"])
    err = r.json()
    if isinstance(err, dict) and isinstance(err.get("error"), dict):
        return str(err["error"]["message"])
    return str(err.get("error") or err.get("message"))


QUESTION_ROUTES = [
    ("/v1/query", '{"question": "%s"}'),
    ("/v1/query/stream", '{"question": "%s"}'),
    ("/api/answer", '{"question": "%s"}'),
    ("/stream", '{"question": "%s"}'),
    ("/api/search", '{"question": "%s"}'),
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "%s"}]}'),
    ("/v1/embeddings", '{"input": ["fine", "%s"]}'),
]


@pytest.mark.parametrize(("path", "template"), QUESTION_ROUTES)
def test_text_that_is_not_unicode_is_a_400_naming_the_field(
    client: TestClient, path: str, template: str
) -> None:
    r = raw(client, path, template % SURROGATE)
    assert r.status_code == 400, r.text
    message = message_of(r)
    assert "not valid Unicode" in message and "\\ud800" in message
    field = {"/v1/chat/completions": "messages[0].content", "/v1/embeddings": "input[1]"}
    assert field.get(path, "question") in message


def test_every_field_is_checked_not_only_the_question(client: TestClient) -> None:
    asked = client.post("/api/answer", json={"question": "whale"}).json()
    cid = asked["conversation_id"]
    cases = [
        ("/api/answer", '{"question": "whale", "conversation_id": "c\\udc00"}', "conversation_id"),
        (
            "/api/feedback",
            '{"feedback": "LIKE", "conversation_id": "c\\ud800", "question_index": 0}',
            "conversation_id",
        ),
        ("/v1/feedback", '{"query_id": "q\\ud800", "rating": "up"}', "query_id"),
        ("/v1/query", '{"question": "whale", "filters": {"source": "\\ud800"}}', "filters.source"),
        (
            "/v1/chat/completions",
            '{"messages": [{"role": "user", "content": "whale"}], "conversation_id": "\\udfff"}',
            "conversation_id",
        ),
    ]
    for path, body, field in cases:
        r = raw(client, path, body)
        assert r.status_code == 400, (path, r.text)
        assert field in message_of(r) and "not valid Unicode" in message_of(r), r.text
    # History is JSON inside a string: its escapes get the same check.
    history = '[{"prompt": "a\\ud800", "response": "b"}]'  # the escape, not the character
    r = client.post("/api/answer", json={"question": "whale", "history": history})
    assert r.status_code == 400 and "history[0].prompt" in message_of(r)
    # Numbers: bounded, finite, and not thousands of digits long.
    for body, field in [
        (
            f'{{"feedback": "LIKE", "conversation_id": "{cid}", "question_index": {2**63}}}',
            "question_index",
        ),
        (
            f'{{"feedback": "LIKE", "conversation_id": "{cid}", "question_index": "{2**64}"}}',
            "question_index",
        ),
        ('{"question": "whale", "chunks": NaN}', "chunks"),
        ('{"question": "whale", "chunks": 1' + "0" * 5000 + "}", "not valid JSON"),
        ('{"question": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON"),
    ]:
        path = "/api/feedback" if "feedback" in body else "/api/answer"
        r = raw(client, path, body)
        assert r.status_code == 400, (body[:80], r.text)
        assert field in message_of(r), r.text
    r = raw(client, "/v1/query", f'{{"question": "whale", "k": {2**64}}}')
    assert r.status_code in (400, 422) and "k" in message_of(r)
    # A valid question still works after all that.
    assert client.post("/v1/query", json={"question": "whale"}).status_code == 200


def test_a_body_over_the_limit_is_refused_before_it_is_read(make_client: ClientFactory) -> None:
    client = make_client(max_body_bytes=4096)
    big = json.dumps({"question": "whale " * 2000})
    for path in (
        "/v1/query",
        "/api/answer",
        "/api/search",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/api/feedback",
        "/v1/feedback",
    ):
        r = client.post(path, content=big.encode(), headers=JSON)
        assert r.status_code == 413, (path, r.text)
        assert "4 KiB (4096 bytes)" in message_of(r) and "RAGLOOP_MAX_BODY_BYTES" in message_of(r)
    r = client.post("/stream", content=big.encode(), headers=JSON)
    assert r.status_code == 413 and "RAGLOOP_MAX_BODY_BYTES" in message_of(r)  # an SSE event
    # Uploads have their own, larger limit: a 10 KB file passes where a 10 KB query did not.
    files = {"files": ("notes.txt", b"whales sing. " * 800)}
    assert client.post("/v1/documents", headers=WRITER, files=files).status_code == 202
    assert client.post("/v1/query", json={"question": "whale"}).status_code == 200


def test_an_upload_over_its_limit_is_refused(make_client: ClientFactory) -> None:
    client = make_client(max_file_mb=0.01, max_upload_files=1, max_body_bytes=4096)
    files = {"file": ("a.txt", b"x" * (2 << 20))}
    r = client.post("/api/upload", headers=WRITER, files=files)
    assert r.status_code == 413 and "RAGLOOP_MAX_UPLOAD_FILES" in message_of(r)


def _run(middleware: BodyLimit, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> Any:
    """Drive the middleware with a streamed body; returns (status, body, bytes the app read)."""
    sent: list[Message] = []
    queue = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    queue[-1]["more_body"] = False
    pulled = 0

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        return queue.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/query", "headers": headers}
    asyncio.run(middleware(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), pulled


async def _reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body and swallows every error, answering 200 (the worst case)."""
    try:
        while (await receive()).get("more_body"):
            pass
    except Exception:  # on purpose: the middleware must still answer 413
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def test_a_streamed_body_is_counted_and_cut_off_at_the_limit(tmp_path: Any) -> None:
    middleware = BodyLimit(_reading_app, Settings(data_dir=tmp_path, max_body_bytes=2048))
    chunks = [b"x" * 1000] * 50  # chunked: no Content-Length
    status, body, pulled = _run(middleware, chunks, [])
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert pulled == 3  # stopped at the chunk that crossed 2,048 bytes, not after all 50
    # A declared length over the limit: refused without reading the body at all.
    status, _, pulled = _run(middleware, chunks, [(b"content-length", b"50000")])
    assert (status, pulled) == (413, 0)
    status, _, _ = _run(middleware, [b"x" * 2000], [(b"content-length", b"2000")])
    assert status == 200


def test_size_text_names_binary_units() -> None:
    assert size_text(8 * 1024 * 1024) == "8 MiB" and size_text(52_428_800) == "50 MiB"
    assert size_text(512) == "512 bytes"


def test_large_embedding_requests_go_in_slices_sized_by_tokens(client: TestClient) -> None:
    index = client.app.state.rl.runtime.active_index()  # type: ignore[attr-defined]
    assert index.batcher is not None
    before = index.batcher.bulk_passes
    texts = [f"whale number {i}" for i in range(100)]  # 5 tokens each as the model reads them
    r = client.post("/v1/embeddings", json={"input": texts})
    assert r.status_code == 200 and len(r.json()["data"]) == 100
    assert index.batcher.bulk_passes - before == 4  # 32 short texts a slice at most
    one = client.post("/v1/embeddings", json={"input": texts[37]}).json()["data"][0]["embedding"]
    assert r.json()["data"][37]["embedding"] == pytest.approx(one, abs=1e-6)  # order kept
    # Long inputs: the model reads 66 tokens of each (its longest input), so 7 fit in the
    # 512-token slice: 21 inputs are 3 passes, whatever their length in characters.
    before = index.batcher.bulk_passes
    long = [" ".join(["whale", "coral"] * 60 + [str(i)]) for i in range(21)]
    r = client.post("/v1/embeddings", json={"input": long})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 21 * 121
    assert index.batcher.bulk_passes - before == 3


def test_embedding_responses_are_rendered_off_the_event_loop(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing 2,048 vectors as JSON takes a few hundred milliseconds: not on the loop that
    serves every other request."""
    where: list[str] = []

    class Recording(JSONResponse):
        def render(self, content: Any) -> bytes:
            try:
                asyncio.get_running_loop()
                where.append("event loop")
            except RuntimeError:
                where.append("worker thread")
            return super().render(content)

    monkeypatch.setattr(embeddings_api, "JSONResponse", Recording)
    r = client.post("/v1/embeddings", json={"input": ["whale", "coral"]})
    assert r.status_code == 200 and len(r.json()["data"]) == 2
    assert where == ["worker thread"]


def test_upload_messages_state_the_real_limits(make_client: ClientFactory) -> None:
    client = make_client(max_upload_files=2, max_file_mb=0.01)
    files = [("file", (f"{i}.txt", b"x", "text/plain")) for i in range(4)]
    r = client.post("/api/upload", headers=WRITER, files=files)
    assert r.status_code == 400 and "is 2" in message_of(r) and "is 3" not in message_of(r)
    big = [("files", ("big.txt", b"x" * 20_000, "text/plain"))]
    message = message_of(client.post("/v1/documents", headers=WRITER, files=big))
    limit = int(0.01 * 2**20)
    assert f"20000 bytes; the limit is 0.01 MiB ({limit} bytes" in message


def test_405_lists_every_method_of_the_path(client: TestClient) -> None:
    r = client.options("/v1/documents")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    assert "GET, POST" in message_of(r)
    assert client.request("PUT", "/v1/query").headers["allow"] == "POST"


# ---- feedback only on your own queries ------------------------------------------------------


def _make_anonymous_query_someone_elses(client: TestClient, query_id: str) -> None:
    """Mark a logged query as asked by a key (as after keys are removed from the settings)."""
    engine = client.app.state.rl.querylog.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(update(queries).where(queries.c.id == query_id).values(client="gone-key"))


def test_feedback_is_accepted_only_from_whoever_asked(make_client: ClientFactory) -> None:
    client = make_client(api_keys="ka,kb")
    a, b = {"X-API-Key": "ka"}, {"X-API-Key": "kb"}
    q = client.post("/v1/query", json={"question": "whale"}, headers=a).json()
    assert client.app.state.rl.querylog.get(q["query_id"]).client == "env-0"  # type: ignore[attr-defined]
    listed = client.app.state.rl.querylog  # type: ignore[attr-defined]
    theirs = client.post(
        "/v1/feedback", json={"query_id": q["query_id"], "rating": "down"}, headers=b
    )
    unknown = client.post("/v1/feedback", json={"query_id": "nope", "rating": "down"}, headers=b)
    assert theirs.status_code == 404 and unknown.status_code == 404
    # Not found for you, worded as a query that does not exist.
    assert message_of(theirs) == message_of(unknown).replace("'nope'", repr(q["query_id"]))
    assert listed.get(q["query_id"]).miss_reasons == []  # nothing was recorded
    mine = client.post(
        "/v1/feedback", json={"query_id": q["query_id"], "rating": "down"}, headers=a
    )
    assert mine.status_code == 200 and mine.json()["miss_reasons"] == ["negative_feedback"]


def test_anonymous_callers_rate_only_anonymous_queries(client: TestClient) -> None:
    q = client.post("/v1/query", json={"question": "whale"}).json()
    asked = client.post("/api/answer", json={"question": "whale"}).json()
    cid, qid = asked["conversation_id"], asked["ragloop"]["query_id"]
    for query_id in (q["query_id"], qid):
        _make_anonymous_query_someone_elses(client, query_id)
    native = client.post("/v1/feedback", json={"query_id": q["query_id"], "rating": "down"})
    assert native.status_code == 404
    docsgpt = client.post(
        "/api/feedback", json={"feedback": "DISLIKE", "conversation_id": cid, "question_index": 0}
    )
    assert docsgpt.status_code == 404 and docsgpt.json()["success"] is False
    assert "no question number 0" in message_of(docsgpt)
    log = client.app.state.rl.querylog  # type: ignore[attr-defined]
    assert log.get(qid).miss_reasons == [] and log.get(q["query_id"]).miss_reasons == []
    # An anonymous query stays open to anonymous feedback.
    again = client.post("/api/answer", json={"question": "whale"}).json()
    body = {"feedback": "DISLIKE", "conversation_id": again["conversation_id"], "question_index": 0}
    assert client.post("/api/feedback", json=body).json() == {"success": True}


def test_docsgpt_feedback_from_another_key_is_not_found(make_client: ClientFactory) -> None:
    client = make_client(api_keys="ka,kb")
    asked = client.post("/api/answer", json={"question": "whale", "api_key": "ka"}).json()
    body = {"feedback": "DISLIKE", "conversation_id": asked["conversation_id"], "question_index": 0}
    assert client.post("/api/feedback", json=body | {"api_key": "kb"}).status_code == 404
    assert client.post("/api/feedback", json=body | {"api_key": "ka"}).status_code == 200


def test_the_query_log_shows_who_asked(make_client: ClientFactory) -> None:
    client = make_client(api_keys="ka", admin_token="t")
    client.post("/v1/query", json={"question": "whale"}, headers={"X-API-Key": "ka"})
    page = client.get("/admin/queries", headers={"Authorization": "Bearer t"}).json()
    assert [i["client"] for i in page["items"]] == ["env-0"]


# ---- retrain datasets only from the gate datasets root --------------------------------------


def test_gate_datasets_outside_their_root_are_refused_alike(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(admin_token="t")
    admin = {"Authorization": "Bearer t"}
    existing = tmp_path / "secret-set"
    existing.mkdir()
    (existing / "corpus.jsonl").write_text("{}\n")
    missing = tmp_path / "no-such-set"

    def refusal(body: dict[str, Any]) -> str:
        r = client.post("/admin/retrain", json=body, headers=admin)
        assert r.status_code == 400, r.text
        return message_of(r)

    there = refusal({"gate_dataset": str(existing)})
    absent = refusal({"gate_dataset": str(missing)})
    # The same words whether or not the path exists: the API is no file probe.
    assert there.replace(str(existing), "P") == absent.replace(str(missing), "P")
    assert "RAGLOOP_GATE_DATASETS_ROOT" in there
    assert "exist" not in there and "No such file" not in absent and "corpus" not in there
    for sneaky in ("../secret-set", "/etc", "a/../../secret-set"):
        assert "is not under it" in refusal({"gate_dataset": sneaky})
    assert "is not under it" in refusal({"general_dataset": str(existing)})
    # Under the root a set is named relative to it, and checked as before.
    root = client.app.state.rl.settings.data_dir / "gate-datasets"  # type: ignore[attr-defined]
    (root / "broken").mkdir(parents=True)
    inside = refusal({"gate_dataset": "broken"})
    assert inside.startswith("gate dataset does not load") and "is not under it" not in inside
    assert client.get("/admin/jobs", headers=admin).json() == []


# ---- the schema names only the generators this server has ----------------------------------


def test_generator_names_are_checked_against_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("RAGLOOP_ANTHROPIC_API_KEY", raising=False)
    settings = Settings(
        data_dir=tmp_path / "data",
        embedder="fake-keyword",
        generator="extractive",
        chunk_tokens=24,
        chunk_overlap=4,
    )
    registry = fake_registry(KeywordEmbedder(DEFAULT_VOCAB))
    with TestClient(create_app(settings, registry=registry)) as client:  # real generators
        schema = client.get("/openapi.json").json()
        field = schema["components"]["schemas"]["QueryIn"]["properties"]["generator"]
        # A string checked at request time, not a closed list the server may not serve.
        assert "enum" not in json.dumps(field) and "string" in json.dumps(field)
        r = client.post("/v1/query", json={"question": "whale", "generator": "openai"})
        assert r.status_code == 400
        message = message_of(r)
        assert "available: auto, extractive" in message and "RAGLOOP_OPENAI_BASE_URL" in message
        unknown = client.post("/v1/query", json={"question": "whale", "generator": "gpt-9"})
        assert unknown.status_code == 400 and "available: auto, extractive" in message_of(unknown)
        stream = client.post("/v1/query/stream", json={"question": "w", "generator": "anthropic"})
        assert stream.status_code == 400 and "ANTHROPIC_API_KEY" in message_of(stream)
        ok = client.post("/v1/query", json={"question": "whale", "generator": "extractive"})
        assert ok.status_code == 200 and ok.json()["generator"] == "extractive"


# ---- the writer lock is private -------------------------------------------------------------


def test_the_writer_lock_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    with WriterLock(tmp_path / "data", "test"):
        path = tmp_path / "data" / "writer.lock"
        assert "pid" in path.read_text()
        assert path.stat().st_mode & 0o777 == 0o600


# ---- deletes are scoped to the uploader ------------------------------------------------------


def _upload(client: TestClient, name: str, text: str, **headers: str) -> str:
    """Upload one file; the id of its document once the job has ingested it."""
    r = client.post("/v1/documents", headers=headers, files=[("files", (name, text.encode()))])
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while not (job := client.get(f"/v1/jobs/{job_id}", headers=headers).json())["done"]:
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["state"] == "succeeded" and job["result"]["added"] == 1, job
    state = client.app.state.rl  # type: ignore[attr-defined]
    [doc] = [d for d in state.runtime.catalog.list_documents(limit=1000) if d.title == name]
    return str(doc.id)


def _cli_document(client: TestClient) -> str:
    """A document ingested from the command line (the fixture's corpus)."""
    state = client.app.state.rl  # type: ignore[attr-defined]
    return next(d.id for d in state.runtime.catalog.list_documents() if d.title == "Scurvy")


def test_a_key_deletes_only_what_it_uploaded(make_client: ClientFactory) -> None:
    client = make_client(api_keys="ka,kb", admin_token="t")
    ka, kb, admin = {"X-API-Key": "ka"}, {"X-API-Key": "kb"}, {"Authorization": "Bearer t"}
    doc = _upload(client, "snakes.md", "# snakes.md\n\nA python snake.\n", **ka)
    unknown = client.delete("/v1/documents/f-nosuchdocument", headers=kb)
    theirs = client.delete(f"/v1/documents/{doc}", headers=kb)
    # Not found, in the same words as a document that does not exist.
    assert unknown.status_code == theirs.status_code == 404
    assert message_of(theirs) == message_of(unknown).replace("f-nosuchdocument", doc)
    catalog = client.app.state.rl.runtime.catalog  # type: ignore[attr-defined]
    assert catalog.get_document(doc) is not None
    # Documents ingested from the command line are the operator's: the admin token only.
    cli = _cli_document(client)
    assert client.delete(f"/v1/documents/{cli}", headers=ka).status_code == 404
    assert catalog.get_document(cli) is not None
    assert client.delete(f"/v1/documents/{doc}", headers=ka).status_code == 200
    assert client.delete(f"/v1/documents/{cli}", headers=admin).status_code == 200
    again = _upload(client, "snakes.md", "# snakes.md\n\nA python snake.\n", **kb)
    assert client.delete(f"/v1/documents/{again}", headers=admin).status_code == 200
    assert catalog.get_document(cli) is None and catalog.get_document(again) is None


def test_open_writes_delete_only_anonymous_uploads(client: TestClient) -> None:
    doc = _upload(client, "snakes.md", "# snakes.md\n\nA python snake.\n", **WRITER)
    assert client.delete(f"/v1/documents/{_cli_document(client)}").status_code == 404
    assert client.delete(f"/v1/documents/{doc}").status_code == 200


# ---- citations never carry a server path ------------------------------------------------------


def test_uploaded_sources_are_relative_to_the_uploads_root(make_client: ClientFactory) -> None:
    client = make_client(api_keys="ka")
    ka = {"X-API-Key": "ka"}
    doc = _upload(client, "snakes.md", "# snakes.md\n\nA python snake python snake.\n", **ka)
    state = client.app.state.rl  # type: ignore[attr-defined]
    assert state.runtime.catalog.get_document(doc).source == "env-0/snakes.md"
    data_dir = str(state.settings.data_dir)
    question = {"question": "python snake", "k": 10}
    answers = [
        client.post("/v1/query", json=question, headers=ka),
        client.post("/api/answer", json=question | {"api_key": "ka"}),
        client.post("/api/search", json=question | {"api_key": "ka"}),
        client.post("/stream", json=question | {"api_key": "ka"}),
        client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "python snake"}]},
            headers=ka,
        ),
        client.get("/v1/documents", headers=ka),
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        assert "env-0/snakes.md" in r.text and data_dir not in r.text, r.request.url
    # A document ingested from the command line keeps the path the operator gave.
    cli = state.runtime.catalog.get_document(_cli_document(client))
    assert Path(cli.source).is_absolute() and cli.source.endswith("scurvy.md")

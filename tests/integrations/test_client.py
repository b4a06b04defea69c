"""``RagloopClient`` against a live ragloop (uvicorn on loopback), and the CLI's ``--server``
mode that goes through it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ragloop.cli.main import app
from ragloop.client import RagloopClient
from ragloop.core.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    StoreError,
)
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder
from tests.integrations.conftest import Live
from tests.integrations.live import ADMIN_TOKEN, KEY
from tests.system.helpers import free_port


def test_query_feedback_search_and_embeddings(live: Live) -> None:
    with RagloopClient(live.url, KEY) as client:
        answer = client.query("volcano lava magma", k=2)
        assert len(answer["sources"]) == 2 and answer["sources"][0]["title"] == "volcano"
        best = answer["sources"][0]
        rated = client.feedback(
            answer["query_id"], "down", relevant_document_ids=[best["document_id"]]
        )
        assert rated["miss"] and "negative_feedback" in rated["miss_reasons"]
        assert rated["labelled_chunk_ids"] == [best["chunk_id"]]
        assert live.querylog.get(answer["query_id"]).miss

        hits = client.search("whale ocean", k=3)
        assert len(hits) == 3 and hits[0]["title"] == "Whales"
        assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
        again = asyncio.run(client.asearch("whale ocean", k=3))
        assert [h["chunk_id"] for h in again] == [h["chunk_id"] for h in hits]

        texts = ["whale ocean", "citrus vitamin scurvy", "bread flour"]
        vectors = client.embed(texts, input_type="query")
        assert len(vectors) == 3 and len(vectors[0]) == len(DEFAULT_VOCAB) + 1
        expected = KeywordEmbedder(DEFAULT_VOCAB).embed(texts)
        assert all(
            abs(a - b) < 1e-6
            for got, want in zip(vectors, expected, strict=True)
            for a, b in zip(got, want, strict=True)
        )


def test_errors_are_ragloop_errors_with_the_server_message(live: Live) -> None:
    with pytest.raises(AuthError, match="server answered 401: Invalid API key"):
        RagloopClient(live.url, "wrong").search("whale")
    client = RagloopClient(live.url, KEY)
    with pytest.raises(InvalidInputError, match="question is empty"):
        client.query("   ")
    with pytest.raises(InvalidInputError, match="question is empty"):
        client.search("   ")  # DocsGPT's {"error": "..."} shape
    with pytest.raises(AuthError, match="invalid or missing admin token"):
        client.models()  # an API key is not the admin token
    client.close()


def _uploaded_job(url: str) -> str:
    files = {"files": ("kettle.txt", b"A kettle boils water for tea.", "text/plain")}
    r = httpx.post(f"{url}/v1/documents", files=files, headers={"X-API-Key": KEY}, timeout=30)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def test_admin_jobs_models_and_retrain(live: Live) -> None:
    with RagloopClient(live.url, ADMIN_TOKEN) as admin:
        models = admin.models()
        assert [(m["version"], m["active"]) for m in models] == [("base", True)]
        assert admin.activate_model("base")[0]["active"]
        with pytest.raises(NotFoundError, match="nope"):
            admin.activate_model("nope")
        # Refused before a job starts: the gate set is checked first.
        with pytest.raises(InvalidInputError, match="gate dataset does not load"):
            admin.retrain({"sources": ["labelled"], "gate_dataset": "/no/such/set"})
        with pytest.raises(InvalidInputError, match="loss"):
            admin.retrain({"loss": "nope"})  # a 422 from validation
        with pytest.raises(NotFoundError):
            admin.job("nope")

        job_id = _uploaded_job(live.url)
        job: dict[str, Any] = admin.job(job_id)
        deadline = time.monotonic() + 60
        while not job["done"] and time.monotonic() < deadline:
            time.sleep(0.1)
            job = admin.job(job_id)
        assert (job["id"], job["kind"], job["state"]) == (job_id, "ingest", "succeeded")
        with pytest.raises(ConflictError, match="already ended"):
            admin.cancel_job(job_id)


def test_transport_failures_and_other_error_shapes() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(
        StoreError, match=re.escape("cannot reach http://ragloop.test: connection refused")
    ):
        RagloopClient("http://ragloop.test/", transport=httpx.MockTransport(refuse)).models()

    answers = {
        "/admin/models": httpx.Response(403, json={"error": {"message": "admin disabled"}}),
        "/api/search": httpx.Response(502, text="<html>bad gateway</html>"),
    }
    mock = httpx.MockTransport(lambda request: answers[request.url.path])
    client = RagloopClient("http://ragloop.test", transport=mock)
    with pytest.raises(ForbiddenError, match="server answered 403: admin disabled"):
        client.models()
    with pytest.raises(StoreError, match="server answered 502: <html>bad gateway"):
        client.search("x")


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_cli_server_mode(live: Live) -> None:
    remote = ["--server", live.url, "--token", ADMIN_TOKEN]
    code, output = _cli("models", "list", *remote, "--json")
    assert code == 0, output
    assert [(m["version"], m["active"]) for m in json.loads(output)] == [("base", True)]
    assert _cli("models", "activate", "base", *remote) == (0, "base is active\n")

    code, output = _cli("retrain", "--gate-dataset", "/no/such/set", *remote)
    assert code == 1
    lines = output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: server answered 400: gate dataset does not load")
    code, output = _cli("models", "list", "--server", live.url, "--token", "wrong")
    assert code == 1 and "server answered 401: invalid or missing admin token" in output
    nowhere = f"http://127.0.0.1:{free_port()}"
    code, output = _cli("models", "list", "--server", nowhere, "--token", ADMIN_TOKEN)
    assert code == 1 and output.startswith(f"error: cannot reach {nowhere}")

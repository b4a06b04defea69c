"""DocsGPT-compatible ingest routes: /api/upload, /api/task_status, /api/sources, /api/combine."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from ragloop.core.storage.jobs import Job
from ragloop.service.docsgpt.sources import task_result
from tests.service.conftest import WRITER, ClientFactory


def wait_for(client: TestClient, task_id: str, **params: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        status = client.get("/api/task_status", params={"task_id": task_id, **params}).json()
        if status["status"] in ("SUCCESS", "FAILURE") or time.monotonic() > deadline:
            return status  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_upload_poll_and_list(client: TestClient) -> None:
    files = [("file", ("bananas.md", b"# Bananas\n\nA banana is a fruit.")), ("user", (None, "u"))]
    r = client.post("/api/upload", headers=WRITER, files=files, data={"name": "fruit"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and set(body) == {"success", "task_id", "source_id"}
    status = wait_for(client, body["task_id"])
    assert status["status"] == "SUCCESS"
    result = status["result"]
    assert result["filename"] == "bananas.md" and result["formats"] == [".md"]
    assert result["report"]["added"] == 1 and result["errors"] == []

    sources = client.get("/api/sources").json()
    assert sources[0] == {
        "name": "Default",
        "date": "default",
        "model": "fake-keyword",
        "location": "remote",
        "tokens": "",
        "retriever": "classic",
    }
    mine = [s for s in sources if s.get("id") == body["source_id"]]
    assert len(mine) == 1 and mine[0]["name"] == "Bananas" and mine[0]["location"] == "local"
    assert len(client.get("/api/sources", params={"limit": 2}).json()) == 3

    found = client.post("/api/search", json={"question": "banana"}).json()
    assert found[0]["document_id"] == body["source_id"]


def test_upload_errors_in_docsgpt_shape(client: TestClient) -> None:
    none = client.post("/api/upload", headers=WRITER, data={"user": "u", "name": "n"})
    assert none.status_code == 400 and none.json()["success"] is False
    assert "file" in none.json()["message"]
    exe = client.post("/api/upload", headers=WRITER, files={"file": ("tool.exe", b"MZ")})
    assert exe.status_code == 415 and "unsupported file type" in exe.json()["error"]
    assert client.get("/api/task_status").status_code == 400
    unknown = client.get("/api/task_status", params={"task_id": "nope"})
    assert unknown.status_code == 404 and unknown.json()["success"] is False


def test_keys_guard_the_ingest_routes(make_client: ClientFactory) -> None:
    client = make_client(api_keys="k1")
    assert client.get("/api/sources").status_code == 401
    assert client.get("/api/sources", params={"api_key": "k1"}).status_code == 200
    assert client.get("/api/sources", headers={"Authorization": "Bearer k1"}).status_code == 200
    denied = client.post("/api/upload", files={"file": ("a.txt", b"apple")})
    assert denied.status_code == 401
    ok = client.post("/api/upload", files={"file": ("a.txt", b"apple")}, data={"api_key": "k1"})
    assert ok.status_code == 200
    assert wait_for(client, ok.json()["task_id"], api_key="k1")["status"] == "SUCCESS"


def test_combine_redirects_to_sources(client: TestClient) -> None:
    r = client.get("/api/combine", follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == "/api/sources"


def test_job_states_map_to_celery_states(client: TestClient) -> None:
    state = client.app.state.rl  # type: ignore[attr-defined]
    running = Job("j", "ingest", "running", 0.0, progress=0.25, message="embedding")
    assert task_result(state, running) == {"current": 25.0, "message": "embedding"}
    assert task_result(state, Job("j", "ingest", "queued", 0.0)) is None
    assert task_result(state, Job("j", "ingest", "failed", 0.0, message="boom")) == "boom"
    job = state.jobs.create("ingest", {"files": ["x.txt"]})
    assert client.get("/api/task_status", params={"task_id": job.id}).json() == {
        "status": "PENDING",
        "result": None,
    }
    state.jobs.update(job.id, state="running", progress=0.5)
    assert client.get("/api/task_status", params={"task_id": job.id}).json()["status"] == "PROGRESS"
    state.jobs.update(job.id, state="failed", message="disk full")
    failed = client.get("/api/task_status", params={"task_id": job.id}).json()
    assert failed == {"status": "FAILURE", "result": "disk full"}

"""Uploads are kept per client, answers never show server paths, and an upload's credentials
are checked before its body is read."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi.testclient import TestClient

from tests.service.conftest import WRITER, ClientFactory, wait_job


def wait_for(client: TestClient, task_id: str, **params: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        status: dict[str, Any] = client.get(
            "/api/task_status", params={"task_id": task_id, **params}
        ).json()
        if status["status"] in ("SUCCESS", "FAILURE"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


#: Reads take a client key, not the admin token.
READER = {"X-API-Key": "key-one"}


def _upload(client: TestClient, name: str, text: bytes, **headers: str) -> dict[str, Any]:
    r = client.post("/v1/documents", headers=headers, files=[("files", (name, text))])
    assert r.status_code == 202, r.text
    return wait_job(client, r.json()["id"], **READER)


def _uploads(client: TestClient) -> list[dict[str, Any]]:
    docs = client.get("/v1/documents", params={"limit": 100}, headers=READER).json()["documents"]
    return [d for d in docs if d["source"].endswith("x.md")]


def test_each_client_has_its_own_documents_and_replaces_only_its_own(
    make_client: ClientFactory,
) -> None:
    client = make_client(api_keys="key-one,key-two", admin_token="admin-token")
    one, two = {"X-API-Key": "key-one"}, {"X-API-Key": "key-two"}
    admin = {"Authorization": "Bearer admin-token"}
    assert _upload(client, "x.md", b"# One\n\nwhale song", **one)["result"]["added"] == 1
    assert _upload(client, "x.md", b"# Two\n\nwhale song", **two)["result"]["added"] == 1
    assert _upload(client, "x.md", b"# Admin\n\nwhale", **admin)["result"]["added"] == 1
    assert sorted(d["source"] for d in _uploads(client)) == [
        "admin/x.md",
        "env-0/x.md",
        "env-1/x.md",
    ]

    # The same client again, under a path-tricked name: its own document is replaced.
    again = _upload(client, "../../etc/x.md", b"# One again\n\nwhale", **one)
    assert (again["result"]["added"], again["result"]["updated"]) == (0, 1)
    titles = {d["source"]: d["title"] for d in _uploads(client)}
    assert titles == {"admin/x.md": "Admin", "env-0/x.md": "One again", "env-1/x.md": "Two"}


def test_docsgpt_uploads_are_kept_per_client(make_client: ClientFactory) -> None:
    client = make_client(api_keys="key-one,key-two", admin_token="admin-token")
    ids = []
    for key in ("key-one", "key-two"):
        files = {"file": ("x.md", b"# X\n\nwhale")}
        r = client.post("/api/upload", files=files, data={"api_key": key})
        assert wait_for(client, r.json()["task_id"], api_key=key)["status"] == "SUCCESS"
        ids.append(r.json()["source_id"])
    assert len(set(ids)) == 2
    assert {d["id"] for d in _uploads(client)} == set(ids)


def test_anonymous_uploads_share_one_folder(client: TestClient) -> None:
    first = _upload(client, "x.md", b"# First\n\nwhale", **WRITER)
    second = _upload(client, "x.md", b"# Second\n\nwhale", **WRITER)
    assert first["result"]["added"] == 1 and second["result"]["updated"] == 1
    assert [d["source"] for d in _uploads(client)] == ["anonymous/x.md"]


def test_answers_name_uploads_relative_to_the_uploads_root(client: TestClient) -> None:
    state = client.app.state.rl  # type: ignore[attr-defined]
    server_paths = {str(state.settings.data_dir), str(state.settings.uploads_dir.resolve())}
    files = [("file", ("bananas.md", b"# Bananas\n\nbanana")), ("file", ("empty.txt", b""))]
    r = client.post("/api/upload", headers=WRITER, files=files)
    status = wait_for(client, r.json()["task_id"])
    assert status["status"] == "SUCCESS"
    assert status["result"]["directory"] == "anonymous"
    assert status["result"]["errors"] == [{"name": "anonymous/empty.txt", "reason": "empty file"}]
    job = client.get(f"/v1/jobs/{r.json()['task_id']}").json()
    answers = [
        status,
        job,
        client.get("/api/sources").json(),
        client.get("/v1/documents", params={"limit": 100}).json(),
    ]
    for answer in answers:
        text = json.dumps(answer)
        assert not any(p in text for p in server_paths), text
    sources = {s.get("source") for s in answers[2]}
    assert "anonymous/bananas.md" in sources


def test_upload_credentials_are_checked_before_the_body_is_read(
    make_client: ClientFactory,
) -> None:
    client = make_client(api_keys="key-one")
    garbage = {"content-type": "multipart/form-data; boundary=zz"}
    # A body that is not multipart at all: parsing it first answered 400, not 401.
    r = client.post("/v1/documents", content=b"not multipart", headers=garbage)
    assert r.status_code == 401, r.text
    r = client.post("/v1/documents", content=b"garbage", headers=garbage | {"X-API-Key": "bad"})
    assert r.status_code == 401, r.text
    assert (
        client.post(
            "/v1/documents", content=b"garbage", headers=garbage | {"X-API-Key": "key-one"}
        ).status_code
        == 400
    )
    # Open writes still need a credential header on a multipart upload.
    open_client = make_client()
    assert open_client.post("/v1/documents", content=b"garbage", headers=garbage).status_code == 401
    # The upload route keeps its documented multipart body.
    body = open_client.get("/openapi.json").json()["paths"]["/v1/documents"]["post"]
    assert "multipart/form-data" in body["requestBody"]["content"]

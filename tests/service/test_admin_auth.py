from fastapi.testclient import TestClient

from tests.service.conftest import ClientFactory


def test_admin_routes_are_403_without_a_configured_token(client: TestClient) -> None:
    r = client.get("/admin/misses")
    assert r.status_code == 403
    assert "RAGLOOP_ADMIN_TOKEN" in r.json()["error"]["message"]


def test_admin_token_required_and_misses_listed(make_client: ClientFactory) -> None:
    client = make_client(admin_token="s3cret", miss_score_threshold=0.5)
    assert client.get("/admin/misses").status_code == 401
    assert client.get("/admin/misses", headers={"Authorization": "Bearer nope"}).status_code == 401
    auth = {"Authorization": "Bearer s3cret"}
    q1 = client.post("/v1/query", json={"question": "quantum physics"}).json()  # low score
    q2 = client.post("/v1/query", json={"question": "volcano lava magma"}).json()
    client.post("/v1/feedback", json={"query_id": q2["query_id"], "rating": "down"})
    page = client.get("/admin/misses", headers=auth).json()
    assert page["total"] == 2
    assert [i["id"] for i in page["items"]] == [q2["query_id"], q1["query_id"]]
    by_reason = client.get(
        "/admin/misses", params={"reason": "negative_feedback"}, headers=auth
    ).json()
    assert [i["id"] for i in by_reason["items"]] == [q2["query_id"]]
    later = client.get("/admin/misses", params={"since": 4e9}, headers=auth).json()
    assert later["total"] == 0
    assert client.get("/admin/misses", params={"reason": "bogus"}, headers=auth).status_code == 400
    everything = client.get("/admin/queries", params={"limit": 1}, headers=auth).json()
    assert everything["total"] == 2 and len(everything["items"]) == 1


def test_api_keys_enforced_when_configured(make_client: ClientFactory) -> None:
    client = make_client(api_keys="k-one,k-two")
    assert client.post("/v1/query", json={"question": "whale"}).status_code == 401
    bad = client.post("/v1/query", json={"question": "whale"}, headers={"X-API-Key": "nope"})
    assert bad.status_code == 401 and bad.json()["error"]["message"] == "Invalid API key."
    ok = client.post(
        "/v1/query", json={"question": "whale"}, headers={"Authorization": "Bearer k-two"}
    )
    assert ok.status_code == 200
    assert (
        client.post(
            "/v1/query", json={"question": "whale"}, headers={"X-API-Key": "k-one"}
        ).status_code
        == 200
    )
    assert client.get("/v1/documents").status_code == 401
    assert client.get("/healthz").status_code == 200  # health stays open


def test_stored_keys_hash_only_and_revocation(make_client: ClientFactory) -> None:
    client = make_client()
    keys = client.app.state.rl.keys  # type: ignore[attr-defined]
    assert client.post("/v1/query", json={"question": "whale"}).status_code == 200  # no keys: open
    record, plaintext = keys.create("ci")
    with client.app.state.rl.runtime.catalog.engine.connect() as conn:  # type: ignore[attr-defined]
        stored = conn.exec_driver_sql("select key_hash from api_keys").scalar()
    assert plaintext not in stored and len(stored) == 64
    assert client.post("/v1/query", json={"question": "whale"}).status_code == 401
    headers = {"X-API-Key": plaintext}
    assert client.post("/v1/query", json={"question": "whale"}, headers=headers).status_code == 200
    keys.revoke(record.id)
    # No active key left, and still nothing is open: not with the revoked key, not without one.
    assert client.post("/v1/query", json={"question": "whale"}, headers=headers).status_code == 401
    assert client.post("/v1/query", json={"question": "whale"}).status_code == 401
    upload = {"files": ("a.txt", b"apple")}
    assert client.post("/v1/documents", files=upload, headers=headers).status_code == 401


def test_writes_are_closed_by_default(make_client: ClientFactory) -> None:
    """With no key (the default), reads stay open but uploads and deletes are refused."""
    client = make_client(open_writes=False)
    upload = {"files": ("a.txt", b"apple pie")}
    for r in (
        client.post("/v1/documents", files=upload),
        client.post("/api/upload", files={"file": ("a.txt", b"apple")}),
        client.delete("/v1/documents/whatever"),
    ):
        assert r.status_code == 403, r.text
        assert "RAGLOOP_OPEN_WRITES" in r.text
    assert client.post("/v1/query", json={"question": "whale"}).status_code == 200
    assert client.get("/v1/documents").status_code == 200


def test_the_admin_token_or_a_key_may_write(make_client: ClientFactory) -> None:
    client = make_client(open_writes=False, admin_token="s3cret")
    upload = {"files": ("a.txt", b"apple pie")}
    r = client.post("/v1/documents", files=upload)
    assert r.status_code == 401 and "admin token" in r.json()["error"]["message"]
    admin = {"Authorization": "Bearer s3cret"}
    assert client.post("/v1/documents", files=upload, headers=admin).status_code == 202
    r = client.post("/api/upload", files={"file": ("b.txt", b"apple")}, headers=admin)
    assert r.status_code == 200 and r.json()["success"] is True
    assert client.delete("/v1/documents/nope", headers=admin).status_code == 404
    keyed = make_client(open_writes=False, api_keys="k1")
    assert keyed.post("/v1/documents", files=upload).status_code == 401
    assert keyed.post("/v1/documents", files=upload, headers={"X-API-Key": "k1"}).status_code == 202


def test_open_writes_still_refuse_cross_site_posts(make_client: ClientFactory) -> None:
    """RAGLOOP_OPEN_WRITES opens writes to clients, not to any web page a visitor opens: a
    form or text/plain post needs no CORS preflight, so such bodies are refused."""
    client = make_client(open_writes=True)
    # A multipart form without a credential header (what an HTML form can send).
    r = client.post("/api/upload", files={"file": ("a.txt", b"apple")}, data={"api_key": "x"})
    assert r.status_code == 401 and "credential header" in r.text
    assert client.post("/v1/documents", files={"files": ("a.txt", b"x")}).status_code == 401
    ok = client.post("/v1/documents", files={"files": ("a.txt", b"x")}, headers={"X-API-Key": "y"})
    assert ok.status_code == 202
    # JSON routes refuse text/plain and form bodies (they would dodge the preflight).
    for path in ("/api/feedback", "/api/answer", "/v1/chat/completions", "/v1/embeddings"):
        for ctype in ("text/plain", "application/x-www-form-urlencoded"):
            r = client.post(path, content=b'{"question": "whale"}', headers={"content-type": ctype})
            assert r.status_code == 415, (path, ctype, r.text)
    r = client.post(
        "/v1/feedback",
        content=b'{"query_id": "q", "rating": "down"}',
        headers={"content-type": "text/plain"},
    )
    assert r.status_code in (415, 422)


def test_api_keys_in_urls_are_redacted_from_access_logs() -> None:
    import logging

    from ragloop.service.app import RedactKeys

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/api/sources?limit=5&api_key=rl_secret&x=1", "1.1", 200),
        None,
    )
    assert RedactKeys().filter(record)
    assert "rl_secret" not in record.getMessage()
    assert "api_key=REDACTED&x=1" in record.getMessage()

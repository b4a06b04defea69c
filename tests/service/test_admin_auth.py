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
    assert (
        client.post("/v1/query", json={"question": "whale"}, headers=headers).status_code == 200
    )  # no keys left: open again

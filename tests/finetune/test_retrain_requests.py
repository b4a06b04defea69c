"""Bad retrain requests are clear 4xx errors and change nothing (fake embedder, fast)."""

from tests.service.conftest import ClientFactory

ADMIN = {"Authorization": "Bearer t"}


def test_bad_retrain_requests(make_client: ClientFactory) -> None:
    client = make_client(admin_token="t")
    assert client.post("/admin/retrain", json={}).status_code == 401
    no_pairs = client.post("/admin/retrain", json={"sources": ["labelled"]}, headers=ADMIN)
    assert no_pairs.status_code == 400
    assert "no training pairs" in no_pairs.json()["error"]["message"]
    bad_gate = client.post("/admin/retrain", json={"gate_dataset": "/no/such/set"}, headers=ADMIN)
    assert bad_gate.status_code == 400 and "gate dataset" in bad_gate.json()["error"]["message"]
    assert client.post("/admin/retrain", json={"loss": "nope"}, headers=ADMIN).status_code == 422
    both = {"query_only": True, "lora": True}
    assert client.post("/admin/retrain", json=both, headers=ADMIN).status_code == 422
    assert client.get("/admin/jobs", params={"kind": "retrain"}, headers=ADMIN).json() == []
    assert client.post("/admin/jobs/nope/cancel", headers=ADMIN).status_code == 404
    assert client.post("/admin/models/nope/activate", headers=ADMIN).status_code == 404
    models = client.get("/admin/models", headers=ADMIN).json()
    assert [(m["version"], m["active"]) for m in models] == [("base", True)]
    assert client.post("/admin/models/base/activate", headers=ADMIN).status_code == 200

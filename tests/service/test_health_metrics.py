from fastapi.testclient import TestClient


def test_health_ready_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == "base"
    client.post("/v1/query", json={"question": "whale"})
    client.post("/v1/query", json={"question": "zzz unknown words"})
    text = client.get("/metrics").text
    assert 'ragloop_request_seconds_count{method="POST",route="/v1/query",status="200"} 2.0' in text
    assert 'ragloop_queries_total{generator="fake"} 2.0' in text
    assert "ragloop_documents 8.0" in text
    assert 'ragloop_active_model{version="base"} 1.0' in text
    assert 'ragloop_misses_total{reason="low_score"}' in text
    # Errors are observed with their status; streamed bodies and unknown paths too.
    assert client.post("/v1/query", json={"question": ""}).status_code == 422
    with client.stream("POST", "/v1/query/stream", json={"question": "whale"}) as streamed:
        assert streamed.status_code == 200 and streamed.read()
    assert client.get("/nope").status_code == 404
    text = client.get("/metrics").text
    assert 'ragloop_request_seconds_count{method="POST",route="/v1/query",status="422"} 1.0' in text
    assert (
        'ragloop_request_seconds_count{method="POST",route="/v1/query/stream",status="200"} 1.0'
        in text
    )
    assert 'ragloop_request_seconds_count{method="GET",route="unmatched",status="404"} 1.0' in text


def test_unknown_route_and_method_use_the_error_shape(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get("/v1/query")
    assert r.status_code == 405


def test_openapi_documents_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/v1/query",
        "/v1/query/stream",
        "/v1/feedback",
        "/v1/documents",
        "/v1/jobs/{job_id}",
        "/v1/documents/{document_id}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/admin/misses",
        "/admin/queries",
    ):
        assert p in paths

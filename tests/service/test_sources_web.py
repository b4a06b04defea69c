"""POST /v1/sources/web: a crawl of a real local web site as a background job, admin only,
under the server's fetch policy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ragloop.core.settings import Settings
from ragloop.service.app import create_app
from ragloop.service.native.sources_web import JOB_KIND, STOPPED
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder, fake_generator_factory, fake_registry
from tests.ingest.test_web import Site, html
from tests.service.conftest import ClientFactory, wait_job

TOKEN = "s3cret"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
#: A public address written as one, so checking it needs no name lookup (nothing is fetched).
PUBLIC = "http://93.184.215.14/"


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    s.routes["/"] = html(
        "Volcano guide",
        "<h1>Volcano</h1><p>Lava and magma flow from the volcano.</p>"
        "<a href='/store.html'>store</a> <a href='/gone.html'>gone</a>",
    )
    s.routes["/store.html"] = html("Store notes", "<p>A chroma vector store keeps vectors.</p>")
    yield s
    s.close()


def test_a_crawl_runs_as_a_job_and_its_pages_are_answered(
    make_client: ClientFactory, site: Site
) -> None:
    client = make_client(admin_token=TOKEN, web_allow_private=True)
    r = client.post("/v1/sources/web", headers=ADMIN, json={"urls": [site.base], "delay": 0})
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["kind"] == JOB_KIND and queued["params"]["urls"] == [site.base]
    assert queued["params"]["depth"] == 3 and queued["params"]["max_pages"] == 500
    job = wait_job(client, queued["id"])
    assert job["state"] == "succeeded" and job["progress"] == 1.0, job
    assert job["message"] == "1 page(s) failed"
    assert job["result"]["added"] == 2
    assert job["errors"] == [{"name": f"{site.base}/gone.html", "reason": "HTTP 404 Not Found"}]
    sources = {d["source"] for d in client.get("/v1/documents").json()["documents"]}
    assert {f"{site.base}/", f"{site.base}/store.html"} <= sources
    hit = client.post("/v1/query", json={"question": "chroma vector", "k": 1}).json()
    assert hit["sources"][0]["source"] == f"{site.base}/store.html"

    # Again, with prune: the page that went away is removed, unchanged pages cost nothing.
    del site.routes["/store.html"]
    again = client.post(
        "/v1/sources/web", headers=ADMIN, json={"urls": [site.base], "delay": 0, "prune": True}
    )
    job = wait_job(client, again.json()["id"])
    assert (job["result"]["unchanged"], job["result"]["removed"]) == (1, 1), job
    assert job["result"]["chunks_embedded"] == 0


def test_only_the_admin_token_may_crawl(make_client: ClientFactory, site: Site) -> None:
    body = {"urls": [site.base]}
    closed = make_client(web_allow_private=True)
    r = closed.post("/v1/sources/web", json=body)
    assert r.status_code == 403 and "RAGLOOP_ADMIN_TOKEN" in r.json()["error"]["message"]
    client = make_client(admin_token=TOKEN, api_keys="rl_client", web_allow_private=True)
    assert client.post("/v1/sources/web", json=body).status_code == 401
    client_key = {"Authorization": "Bearer rl_client"}
    assert client.post("/v1/sources/web", json=body, headers=client_key).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/v1/sources/web", json=body, headers=wrong).status_code == 401
    assert site.log == []


def test_requests_are_checked_before_a_job_starts(make_client: ClientFactory) -> None:
    client = make_client(admin_token=TOKEN, web_allow_private=True)

    def post(body: dict[str, Any]) -> tuple[int, str]:
        r = client.post("/v1/sources/web", headers=ADMIN, json=body)
        return r.status_code, r.json()["error"]["message"]

    status, message = post({"urls": ["ftp://example.org/file"]})
    assert status == 400 and "urls[0]: not an http(s) URL" in message
    for url in ("file:///etc/passwd", "http://[oops/", "http://host:99999/", "http:///path"):
        status, message = post({"urls": [url]})
        assert status == 400 and "not an http(s) URL" in message, (url, message)
    assert post({"urls": []})[0] == 422
    assert post({"urls": ["http://example.org/"], "depth": -1})[0] == 422
    assert post({"urls": ["http://example.org/"], "max_pages": 0})[0] == 422
    assert post({"urls": ["http://example.org/"], "unknown": 1})[0] == 422
    status, message = post({"urls": [PUBLIC], "allow_hosts": ["a/b/c"]})
    assert status == 400 and "allow_hosts[0]: not a host name" in message
    assert client.get("/admin/jobs", headers=ADMIN, params={"kind": JOB_KIND}).json() == []


def test_the_policy_refuses_loopback_without_the_setting(
    make_client: ClientFactory, site: Site
) -> None:
    client = make_client(admin_token=TOKEN)
    port = site.server.server_address[1]
    for url, shown in (
        (site.base + "/", "127.0.0.1, a loopback address"),
        (f"http://localhost:{port}/", "localhost resolves to 127.0.0.1, a loopback address"),
        ("http://[::1]/", "::1, a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a link-local address"),
        ("http://10.0.0.8/", "10.0.0.8, a private address"),
    ):
        r = client.post("/v1/sources/web", headers=ADMIN, json={"urls": [url]})
        assert r.status_code == 400, (url, r.text)
        message = r.json()["error"]["message"]
        assert f"refused by the fetch policy: {shown}" in message
        assert "RAGLOOP_WEB_ALLOW_PRIVATE" in message
    r = client.post(
        "/v1/sources/web",
        headers=ADMIN,
        json={"urls": [PUBLIC], "allow_hosts": [f"127.0.0.1:{port}"]},
    )
    assert r.status_code == 400 and "allow_hosts[0]" in r.json()["error"]["message"]
    assert site.log == []

    # A host named in RAGLOOP_WEB_ALLOWED_HOSTS is let through.
    allowed = make_client(admin_token=TOKEN, web_allowed_hosts=f"other.test, 127.0.0.1:{port}")
    r = allowed.post("/v1/sources/web", headers=ADMIN, json={"urls": [site.base], "delay": 0})
    assert r.status_code == 202
    job = wait_job(allowed, r.json()["id"])
    assert job["result"]["added"] == 2, job


def _app(tmp_path: Path, **overrides: Any) -> TestClient:
    settings = Settings(
        data_dir=tmp_path / "data",
        embedder="fake-keyword",
        chunk_tokens=24,
        chunk_overlap=4,
        admin_token=TOKEN,
        web_allow_private=True,
        **overrides,
    )
    registry = fake_registry(KeywordEmbedder(DEFAULT_VOCAB))
    return TestClient(
        create_app(settings, registry=registry, generator_factory=fake_generator_factory())
    )


def test_a_shutdown_stops_a_crawl_between_pages(tmp_path: Path, site: Site) -> None:
    links = ""
    for i in range(40):
        site.routes[f"/p{i}.html"] = html(f"Page {i}", f"<p>whale number {i}</p>")
        links += f"<a href='/p{i}.html'>{i}</a> "
    site.routes["/"] = html("Start", f"<p>ocean</p>{links}")
    body = {"urls": [site.base], "delay": 0.3}
    with _app(tmp_path) as client:
        job_id = client.post("/v1/sources/web", headers=ADMIN, json=body).json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job_id}").json()["result"].get("pages", 0) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5  # not the 12 s the rest of the crawl would take
    with _app(tmp_path) as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["state"] == "cancelled", job
        assert job["message"].startswith(STOPPED)
        assert 3 <= job["result"]["added"] < 40
        documents = client.get("/v1/documents").json()["total"]
        assert documents == job["result"]["added"]


def test_a_crawl_left_unfinished_by_a_dead_process_fails_at_start_up(tmp_path: Path) -> None:
    with _app(tmp_path) as client:
        jobs = client.app.state.rl.jobs  # type: ignore[attr-defined]
        left = jobs.create(JOB_KIND, {"urls": ["http://example.org/"]})
        jobs.update(left.id, state="running")
    with _app(tmp_path) as client:
        job = client.get(f"/v1/jobs/{left.id}").json()
        assert (job["state"], job["message"]) == ("failed", STOPPED)

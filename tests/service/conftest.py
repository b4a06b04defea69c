"""An app on the fake embedder and fake generators, with a small corpus ingested."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ragloop.core.runtime import open_runtime
from ragloop.core.settings import Settings
from ragloop.ingest.pipeline import Ingestor
from ragloop.service.app import create_app
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder, fake_generator_factory, fake_registry
from tests.ingest.samples import write_corpus

ClientFactory = Callable[..., TestClient]
#: What a non-browser client sends with a multipart upload when writes are open (no key in
#: use): any credential header; a cross-site HTML form cannot set one (see ``check_writer``).
WRITER = {"X-API-Key": "open-writes"}
#: A module mark: every test of the module runs once on a SQLite catalog and once on a
#: PostgreSQL one (a fresh database per test).
BOTH_CATALOGS = pytest.mark.parametrize("make_client", ["sqlite", "postgresql"], indirect=True)


def wait_job(
    client: TestClient, job_id: str, timeout: float = 60, **headers: str
) -> dict[str, Any]:
    """Poll ``GET /v1/jobs/{id}`` (with ``headers``) until the job is done; fail past
    ``timeout`` seconds with its last state."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["done"]:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


@pytest.fixture
def make_client(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ClientFactory]:
    """Build a TestClient over a data dir with the sample corpus (fake embedder); on SQLite,
    or on PostgreSQL under ``BOTH_CATALOGS``."""
    clients: list[TestClient] = []
    catalog = getattr(request, "param", "sqlite")
    pg_url = str(request.getfixturevalue("pg_url")) if catalog == "postgresql" else None

    def build(generators: dict[str, Any] | None = None, **overrides: Any) -> TestClient:
        data = tmp_path / f"data{len(clients)}"
        # Keyword-fake cosines are low (out-of-vocabulary words share one dimension).
        overrides.setdefault("miss_score_threshold", 0.1)
        # Most tests upload without a key; the closed default has its own tests.
        overrides.setdefault("open_writes", True)
        if pg_url is not None:
            overrides.setdefault("catalog_url", pg_url)
        settings = Settings(
            data_dir=data, embedder="fake-keyword", chunk_tokens=24, chunk_overlap=4, **overrides
        )
        registry = fake_registry(KeywordEmbedder(DEFAULT_VOCAB))
        rt = open_runtime(settings, registry=registry)
        Ingestor(rt).ingest([write_corpus(tmp_path / "docs")])
        rt.close()
        app = create_app(
            settings, registry=registry, generator_factory=fake_generator_factory(generators)
        )
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()

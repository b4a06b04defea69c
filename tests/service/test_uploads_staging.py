"""The staging folder of uploads: a refused upload leaves nothing there, and start-up removes
what dead processes left."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fastapi.testclient import TestClient

from ragloop.core.settings import Settings
from ragloop.service.app import create_app
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder, fake_generator_factory, fake_registry
from tests.service.conftest import WRITER


def staging_of(client: TestClient) -> Path:
    return client.app.state.rl.settings.uploads_dir / ".staging"  # type: ignore[attr-defined]


def start(settings: Settings) -> TestClient:
    """A fresh app over an existing data dir, as after a restart."""
    registry = fake_registry(KeywordEmbedder(DEFAULT_VOCAB))
    client = TestClient(
        create_app(settings, registry=registry, generator_factory=fake_generator_factory())
    )
    client.__enter__()
    return client


def test_a_refused_upload_leaves_nothing_staged(client: TestClient) -> None:
    twice = [("files", ("a.md", b"# A\n\napple")), ("files", ("../a.md", b"# B\n\napple"))]
    r = client.post("/v1/documents", headers=WRITER, files=twice)
    assert r.status_code == 400 and "a.md twice" in r.text
    docsgpt = [("file", f[1]) for f in twice]
    r = client.post("/api/upload", headers=WRITER, files=docsgpt)
    assert r.status_code == 400 and "a.md twice" in r.text
    assert list(staging_of(client).iterdir()) == []


def test_start_up_removes_stale_staging_entries(client: TestClient) -> None:
    settings = client.app.state.rl.settings  # type: ignore[attr-defined]
    client.__exit__(None, None, None)
    staging = settings.uploads_dir / ".staging"
    (staging / "tmpdead").mkdir(parents=True)
    (staging / "tmpdead" / "half.md").write_bytes(b"# Half")
    (staging / "stray.md").write_bytes(b"# Stray")
    # An upload another live worker is writing right now (newer than this start): kept.
    (staging / "tmplive").mkdir()
    future = time.time() + 3600
    os.utime(staging / "tmplive", (future, future))
    restarted = start(settings)
    try:
        assert sorted(p.name for p in staging.iterdir()) == ["tmplive"]
    finally:
        restarted.__exit__(None, None, None)

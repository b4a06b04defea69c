"""The data dir and what holds users' data are private to the server's user, whatever the
umask; folders someone else made keep their mode."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ragloop.core.runtime import open_runtime
from ragloop.core.settings import Settings
from tests.fakes import fake_registry
from tests.service.conftest import WRITER


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The loosest umask: files and folders are created world-writable unless we say so."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_a_new_data_dir_and_catalog_are_private(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    settings = Settings(data_dir=data, embedder="fake-keyword")
    rt = open_runtime(settings, registry=fake_registry())
    try:
        rt.catalog.set_meta("probe", "1")  # a write: the WAL files exist now
        assert (mode(tmp_path / "new"), mode(data), mode(data / "chroma")) == (0o700,) * 3
        db = data / "catalog.sqlite"
        for f in (db, db.with_name("catalog.sqlite-wal"), db.with_name("catalog.sqlite-shm")):
            assert mode(f) == 0o600, f
    finally:
        rt.close()


@pytest.mark.usefixtures("open_umask")
def test_an_existing_data_dir_keeps_its_mode(tmp_path: Path) -> None:
    data = tmp_path / "mine"
    data.mkdir(mode=0o750)
    os.chmod(data, 0o750)
    rt = open_runtime(Settings(data_dir=data, embedder="fake-keyword"), registry=fake_registry())
    rt.close()
    assert mode(data) == 0o750
    assert mode(data / "catalog.sqlite") == 0o600


def test_uploads_are_private(client: TestClient) -> None:
    old = os.umask(0)
    try:
        r = client.post(
            "/v1/documents", headers=WRITER, files=[("files", ("p.md", b"# P\n\nwhale"))]
        )
        deadline = time.monotonic() + 60
        while not client.get(f"/v1/jobs/{r.json()['id']}").json()["done"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.umask(old)
    uploads = client.app.state.rl.settings.uploads_dir  # type: ignore[attr-defined]
    assert (mode(uploads), mode(uploads / ".staging"), mode(uploads / "anonymous")) == (0o700,) * 3
    assert mode(uploads / "anonymous" / "p.md") == 0o600

"""An upload job a crash interrupted is resumed at the next start-up, once.

A ``kill -9`` cannot be aimed between two lines of a job inside the test process, so each test
stops the server and lays out the data dir as the dead process left it: the job row still
running, some files already moved into the client's uploads folder, the rest still staged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from ragloop.core.settings import Settings
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.jobs import JobStore
from tests.service.conftest import WRITER, wait_job
from tests.service.test_uploads_staging import start


def _crashed_job(
    settings: Settings, moved: dict[str, bytes], staged: dict[str, bytes], **extra: Any
) -> str:
    """The state a process killed while moving an upload into ``uploads/anonymous`` leaves."""
    folder = settings.uploads_dir / "anonymous"
    staging = settings.uploads_dir / ".staging" / "tmpcrash"
    for where, files in ((folder, moved), (staging, staged)):
        where.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (where / name).write_bytes(data)
    catalog = Catalog.open(settings.resolved_catalog_url)
    try:
        jobs = JobStore(catalog.engine)
        params = {"files": [*moved, *staged], "client": "anonymous", "staging": "tmpcrash"}
        job = jobs.create("ingest", params | extra)
        jobs.update(job.id, state="running", message="saving files")
    finally:
        catalog.close()
    return job.id


def _stop(client: TestClient) -> Settings:
    settings: Settings = client.app.state.rl.settings  # type: ignore[attr-defined]
    client.__exit__(None, None, None)
    return settings


def test_an_interrupted_upload_is_resumed_at_start_up(client: TestClient) -> None:
    settings = _stop(client)
    job_id = _crashed_job(
        settings,
        moved={"moved.md": b"# Moved\n\nwhale song"},
        staged={"staged.md": b"# Staged\n\nwhale"},
    )
    restarted = start(settings)
    try:
        job = wait_job(restarted, job_id)
        assert job["state"] == "succeeded", job
        assert (job["result"]["added"], job["errors"]) == (2, [])
        docs = restarted.get("/v1/documents", params={"limit": 100}).json()["documents"]
        sources = {d["source"] for d in docs}
        assert {"anonymous/moved.md", "anonymous/staged.md"} <= sources
        assert sorted(p.name for p in (settings.uploads_dir / "anonymous").iterdir()) == [
            "moved.md",
            "staged.md",
        ]
        assert list((settings.uploads_dir / ".staging").iterdir()) == []
    finally:
        restarted.__exit__(None, None, None)


def test_a_job_interrupted_again_fails_and_its_unindexed_files_go(client: TestClient) -> None:
    r = client.post(
        "/v1/documents", headers=WRITER, files=[("files", ("kept.md", b"# Kept\n\nwhale"))]
    )
    assert wait_job(client, r.json()["id"])["state"] == "succeeded"
    settings = _stop(client)
    job_id = _crashed_job(
        settings,
        moved={"kept.md": b"# Kept v2\n\nwhale", "new.md": b"# New\n\nwhale"},
        staged={"late.md": b"# Late"},
        resumed=True,
    )
    restarted = start(settings)
    try:
        job = wait_job(restarted, job_id)
        assert job["state"] == "failed" and "stopped twice" in job["message"], job
        assert "removed, never ingested: new.md" in job["message"]
        left = sorted(p.name for p in (settings.uploads_dir / "anonymous").iterdir())
        assert left == ["kept.md"]  # still the source of its (earlier) document
        assert not Path(settings.uploads_dir / ".staging" / "tmpcrash").exists()
    finally:
        restarted.__exit__(None, None, None)

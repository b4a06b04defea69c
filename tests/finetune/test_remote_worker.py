"""Remote training: the API host queues a retrain job in PostgreSQL (procrastinate), a
`ragloop worker` process takes it, trains it on its device into the shared root, and the API
host gates and promotes; a worker killed mid-job fails the job within the lease while the old
model keeps serving. Real PostgreSQL, the real bundled model, small jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ragloop.core.settings import Settings
from tests.finetune.test_loop import _wait, loop_app

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": "Bearer t"}
LEASE = 4.0


def _wait_message(client: TestClient, job_id: str, message: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        job = client.get(f"/admin/jobs/{job_id}", headers=ADMIN).json()
        if job["message"] == message:
            return
        assert not job["done"] and time.monotonic() < deadline, job
        time.sleep(0.2)


def _start_worker(pg_url: str, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    """`ragloop worker` in its own process, with only the environment a worker host has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLOOP_")}
    env |= {
        "RAGLOOP_CATALOG_URL": pg_url,
        "RAGLOOP_TRAINING_LEASE_SECONDS": str(LEASE),
        "RAGLOOP_DEVICE": "cpu",
        "RAGLOOP_BACKEND": "torch",
        "RAGLOOP_RETRIEVAL": "dense",
        "RAGLOOP_DATA_DIR": str(
            tmp_path / "worker-host"
        ),  # never used: jobs are in the shared root
    }
    log = (tmp_path / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragloop.cli.main", "worker", "--name", name],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def remote_client(tmp_path: Path, pg_url: str) -> Iterator[tuple[TestClient, Path]]:
    with loop_app(
        tmp_path,
        catalog_url=pg_url,
        training="remote",  # the queue is the catalog's PostgreSQL database
        shared_root=tmp_path / "shared",
        training_lease_seconds=LEASE,
    ) as app:
        yield app


def _adapter_job(gate: Path, epochs: int) -> dict[str, object]:
    """Retrain options for a quick query-adapter job gated on the tiny gate set."""
    return {
        "sources": ["labelled", "synthetic"],
        "query_only": True,
        "epochs": epochs,
        "gate_dataset": str(gate),
        "min_gate_questions": 1,
        "margin": 0.0,
    }


def _active(client: TestClient) -> list[str]:
    return [m["version"] for m in client.get("/admin/models", headers=ADMIN).json() if m["active"]]


def test_worker_process_trains_queued_jobs_and_the_gate_decides(
    remote_client: tuple[TestClient, Path], pg_url: str, tmp_path: Path
) -> None:
    client, gate = remote_client
    good = _adapter_job(gate, epochs=5)
    # Queued before any worker runs: it waits in the queue (no lease runs), a cancel takes it
    # out; the next one waits until a worker starts.
    dropped = client.post("/admin/retrain", json=good, headers=ADMIN).json()
    _wait_message(client, dropped["id"], "waiting for a training worker")
    assert client.post(f"/admin/jobs/{dropped['id']}/cancel", headers=ADMIN).status_code == 200
    assert _wait(client, dropped["id"], timeout=30)["state"] == "cancelled"
    first = client.post("/admin/retrain", json=good, headers=ADMIN).json()
    _wait_message(client, first["id"], "waiting for a training worker")
    time.sleep(LEASE + 1)  # no worker yet: no lease runs out while a job waits in the queue
    waiting = client.get(f"/admin/jobs/{first['id']}", headers=ADMIN).json()
    assert waiting["state"] == "running" and waiting["message"].startswith("waiting"), waiting
    worker = _start_worker(pg_url, tmp_path, "w1")
    try:
        done = _wait(client, first["id"])
        assert done["state"] == "promoted", (done, (tmp_path / "w1.log").read_text())
        version = done["result"]["version"]
        assert done["result"]["worker"]["exit"] == 0 and done["result"]["worker"]["beat"] >= 2
        assert _active(client) == [version]
        model_dir = tmp_path / "shared" / "models" / version  # written by the worker
        assert (model_dir / "query_adapter.npy").is_file() and (model_dir / "gate.json").is_file()
        assert (tmp_path / "shared" / "jobs" / first["id"] / "worker.log").is_file()
        body = client.post("/v1/query", json={"question": "why did sailors get sick"}).json()
        assert body["model_version"] == version

        bad = {
            "sources": ["synthetic"],
            "epochs": 4,
            "batch_size": 4,
            "learning_rate": 3e-4,
            "shuffle_positives": True,
            "gate_dataset": str(gate),
            "min_gate_questions": 1,
            "margin": 0.01,
        }
        second = client.post("/admin/retrain", json=bad, headers=ADMIN).json()
        done = _wait(client, second["id"])
        assert done["state"] == "rejected", (done, (tmp_path / "w1.log").read_text())
        assert done["result"]["gate"]["promote"] is False
        assert _active(client) == [version]
    finally:
        _stop(worker)
    assert worker.returncode == 0, (tmp_path / "w1.log").read_text()


def test_killed_worker_fails_the_job_within_the_lease(
    remote_client: tuple[TestClient, Path], pg_url: str, tmp_path: Path
) -> None:
    client, gate = remote_client
    worker = _start_worker(pg_url, tmp_path, "w2")
    try:
        long = {"sources": ["synthetic"], "epochs": 20, "batch_size": 2, "gate_dataset": str(gate)}
        job = client.post("/admin/retrain", json=long, headers=ADMIN).json()
        deadline = time.monotonic() + 240
        while True:  # until the worker beats on the job and its training process reports
            row = client.get(f"/admin/jobs/{job['id']}", headers=ADMIN).json()
            if row["result"].get("worker", {}).get("beat", 0) >= 2 and row["progress"] > 0.1:
                break
            assert not row["done"] and time.monotonic() < deadline, (
                row,
                (tmp_path / "w2.log").read_text(),
            )
            time.sleep(0.2)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed = time.monotonic()
        done = _wait(client, job["id"], timeout=LEASE + 30)
        assert time.monotonic() - killed < LEASE + 10  # the lease, plus polling and slow CPUs
    finally:
        _stop(worker)
    assert done["state"] == "failed", done
    assert "stopped sending heartbeats" in done["message"], done
    assert _active(client) == ["base"]
    body = client.post("/v1/query", json={"question": "why did sailors get sick"}).json()
    assert body["model_version"] == "base" and body["sources"]
    # The training process died with its worker (PR_SET_PDEATHSIG): the log stops growing.
    log = tmp_path / "shared" / "jobs" / job["id"] / "worker.log"
    size = log.stat().st_size
    time.sleep(3)
    assert log.stat().st_size == size
    # A new worker finds no job left running for it, and the next job trains.
    again = _start_worker(pg_url, tmp_path, "w3")
    try:
        quick = _adapter_job(gate, epochs=2)
        nxt = _wait(client, client.post("/admin/retrain", json=quick, headers=ADMIN).json()["id"])
        assert nxt["state"] in ("promoted", "rejected"), (nxt, (tmp_path / "w3.log").read_text())
    finally:
        _stop(again)


def test_remote_training_settings(tmp_path: Path, pg_url: str) -> None:
    from ragloop.core.errors import ConfigError
    from ragloop.finetune.remote import queue_url, remote_enabled, shared_root

    local = Settings(data_dir=tmp_path)
    assert not remote_enabled(local) and shared_root(local) == tmp_path.resolve()
    assert remote_enabled(Settings(data_dir=tmp_path, training_queue=pg_url))
    assert not remote_enabled(Settings(data_dir=tmp_path, training_queue=pg_url, training="local"))
    with pytest.raises(ConfigError, match="needs a PostgreSQL queue"):
        queue_url(Settings(data_dir=tmp_path, training="remote"))  # a SQLite catalog
    shared = Settings(data_dir=tmp_path, catalog_url=pg_url, shared_root=tmp_path / "s")
    assert queue_url(shared) == pg_url and shared_root(shared) == (tmp_path / "s").resolve()
    bare = "postgresql://" + pg_url.removeprefix("postgresql+psycopg://")
    assert queue_url(Settings(data_dir=tmp_path, training_queue=bare)) == pg_url

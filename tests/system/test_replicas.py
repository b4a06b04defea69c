"""Past one machine: two ``ragloop serve`` replicas on one PostgreSQL catalog and one Chroma
server, as real processes. Ingest through one, query through the other; one retrain for two
concurrent requests; queries on both never fail while it trains and promotes; both follow a
promotion and a rollback within the documented bound; one replica runs two workers whose
metrics a scrape sums."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from tests.finetune.test_loop import _gate_dataset, topics_corpus
from tests.pg_server import PostgresServer
from tests.system.helpers import free_port
from tests.system.test_chroma_server import chroma_url  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": "Bearer t"}
QUESTION = "why did sailors get sick"
#: docs/deployment.md: a replica re-reads the active pointer every second; the first request
#: after a change loads the new model (seconds on this busy 2-core machine) and in-flight
#: requests finish on the old one.
FOLLOW_BOUND_S = 1.0
LOAD_SLACK_S = 6.0


def _client(url: str) -> httpx.Client:
    """A new connection per request: a kept-alive one stays with one worker of a replica."""
    return httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0))


class Replica:
    """One ``ragloop serve`` process (``workers`` uvicorn workers) on a free port."""

    def __init__(self, name: str, env: dict[str, str], data: Path, workers: int) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = data.parent / f"{name}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ragloop.cli.main",
                    "serve",
                    "--port",
                    self.url.rsplit(":", 1)[1],
                    "--workers",
                    str(workers),
                    "--data-dir",
                    str(data),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.http = _client(self.url)
        self.queries = 0

    def wait_ready(self, deadline: float) -> None:
        while True:
            try:
                if self.http.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, f"{self.name} exited: {self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{self.name} not ready: {self.log.read_text()}"
            time.sleep(0.3)

    def query(self) -> dict[str, Any]:
        r = self.http.post("/v1/query", json={"question": QUESTION, "k": 3})
        assert r.status_code == 200, (self.name, r.status_code, r.text)
        self.queries += 1
        return r.json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()  # uvicorn's own shutdown: workers, then the metrics folder
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def _pair(
    tmp_path: Path, catalog: str, chroma: str, extra: dict[str, str], workers: tuple[int, int]
) -> Iterator[tuple[Replica, Replica]]:
    """Two replicas on one catalog and one Chroma server, started together, stopped after."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLOOP_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env |= {
        "RAGLOOP_CATALOG_URL": catalog,
        "RAGLOOP_CHROMA_URL": chroma,
        "RAGLOOP_GENERATOR": "extractive",
        "RAGLOOP_ADMIN_TOKEN": "t",
        "RAGLOOP_RETRIEVAL": "dense",
        "RAGLOOP_GATE_DATASETS_ROOT": str(tmp_path),
    } | extra
    # One host here, so one data dir (models, job files); across hosts it is a shared volume.
    data = tmp_path / "data"
    a = Replica("a", env, data, workers=workers[0])
    b = Replica("b", env, data, workers=workers[1])
    try:
        deadline = time.monotonic() + 120
        a.wait_ready(deadline)
        b.wait_ready(deadline)
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture
def replicas(
    tmp_path: Path,
    pg_server: PostgresServer,
    chroma_url: str,  # noqa: F811 - the fixture imported above
) -> Iterator[tuple[Replica, Replica]]:
    catalog = pg_server.url(pg_server.migrated_database())
    with _pair(tmp_path, catalog, chroma_url, {}, (2, 1)) as pair:
        yield pair


def _wait_job(replica: Replica, job_id: str, timeout: float = 150) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = replica.http.get(f"/admin/jobs/{job_id}", headers=ADMIN).json()
        if job["done"]:
            return job  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, job
        time.sleep(0.3)


def _ingest(replica: Replica) -> None:
    up = replica.http.post(
        "/v1/documents", files=[("files", ("corpus.jsonl", topics_corpus()))], headers=ADMIN
    )
    assert up.status_code == 202, up.text
    job = _wait_job(replica, up.json()["id"], timeout=60)
    assert job["state"] == "succeeded", job


def _followed(replica: Replica, version: str, since: float) -> float:
    """Seconds from ``since`` until ``replica`` answers with ``version`` on every worker
    (eight answers in a row), or fails the test past the bound."""
    row = 0
    seen = 0.0
    while row < 8:
        body = replica.query()
        if body["model_version"] == version:
            row += 1
            seen = seen or time.monotonic()
        else:
            row, seen = 0, 0.0
        assert time.monotonic() - since < FOLLOW_BOUND_S + LOAD_SLACK_S, (replica.name, body)
    return seen - since


def test_two_replicas_share_catalog_chroma_jobs_and_promotions(
    replicas: tuple[Replica, Replica], tmp_path: Path
) -> None:
    a, b = replicas
    _gate_dataset(tmp_path / "gate")

    # ingest through A, query through B
    _ingest(a)
    first = b.query()
    assert first["model_version"] == "base"
    assert first["sources"][0]["chunk_id"] and "Scurvy" in first["sources"][0]["text"]
    fb = b.http.post(
        "/v1/feedback",
        json={"query_id": first["query_id"], "rating": "up", "relevant_document_ids": ["scurvy"]},
    )
    assert fb.status_code == 200, fb.text

    # clients query both replicas for the whole retrain; none may fail
    stop = threading.Event()
    answered = {"a": 0, "b": 0}
    failures: list[str] = []

    def ask(replica: Replica) -> None:
        with _client(replica.url) as http:
            while not stop.is_set():
                try:
                    r = http.post("/v1/query", json={"question": QUESTION, "k": 3})
                    if r.status_code == 200:
                        answered[replica.name] += 1
                    else:
                        failures.append(f"{replica.name} {r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    failures.append(f"{replica.name} {exc!r}")
                time.sleep(0.05)

    clients = [threading.Thread(target=ask, args=(r,)) for r in (a, b, a, b)]
    for c in clients:
        c.start()

    # two concurrent retrain requests, one per replica: one job, one 409
    options = {
        "sources": ["labelled", "synthetic"],
        "epochs": 3,
        "batch_size": 4,
        "learning_rate": 1e-4,
        "gate_dataset": "gate",
        "min_gate_questions": 1,
        "margin": 0.0,
    }
    barrier = threading.Barrier(2)
    replies: dict[str, httpx.Response] = {}

    def retrain(replica: Replica) -> None:
        barrier.wait()
        replies[replica.name] = replica.http.post("/admin/retrain", json=options, headers=ADMIN)

    starters = [threading.Thread(target=retrain, args=(r,)) for r in (a, b)]
    for s in starters:
        s.start()
    for s in starters:
        s.join()
    codes = sorted(r.status_code for r in replies.values())
    assert codes == [202, 409], {k: (v.status_code, v.text) for k, v in replies.items()}
    winner = next(k for k, v in replies.items() if v.status_code == 202)
    loser = replies["b" if winner == "a" else "a"]
    assert loser.status_code == 409 and "one at a time" in loser.text, loser.text
    done = _wait_job(a, replies[winner].json()["id"])
    promoted_at = time.monotonic()
    assert done["state"] == "promoted", done
    version = done["result"]["version"]

    # both replicas (all three processes) serve the new version within the bound
    lag = {r.name: _followed(r, version, promoted_at) for r in (a, b)}
    time.sleep(0.5)
    stop.set()
    for c in clients:
        c.join()
    assert failures == []
    assert answered["a"] > 0 and answered["b"] > 0

    # a rollback through B is seen by A (both workers)
    rolled = b.http.post("/admin/models/base/activate", headers=ADMIN)
    assert rolled.status_code == 200, rolled.text
    back = _followed(a, "base", time.monotonic())
    assert back <= FOLLOW_BOUND_S + 1.0  # base is loaded already: only the re-read interval
    print(f"follow lag after promotion {lag}, after rollback {back:.2f} s")

    # A's two workers: any scrape (whichever worker answers it) counts both workers' queries
    metrics_dir = Path(_worker_environ(a.proc.pid)["PROMETHEUS_MULTIPROC_DIR"])
    assert len(list(metrics_dir.glob("counter_*.db"))) == 2  # one file per worker
    totals = {_queries_total(a.http.get("/metrics").text) for _ in range(6)}
    assert totals == {answered["a"] + a.queries}
    a.stop()
    assert not metrics_dir.exists()  # serve removes the folder it made


def test_two_replicas_with_the_scheduler_start_one_job_when_due(
    tmp_path: Path,
    pg_server: PostgresServer,
    chroma_url: str,  # noqa: F811 - the fixture imported above
) -> None:
    """Three schedulers (replica A's two workers and B's) look every half second at a trigger
    due every 8 seconds: when it fires, one retrain job starts, not one per process."""
    database = pg_server.migrated_database()
    extra = {"RAGLOOP_RETRAIN_EVERY_HOURS": str(8 / 3600), "RAGLOOP_RETRAIN_CHECK_S": "0.5"}
    with _pair(tmp_path, pg_server.url(database), chroma_url, extra, (2, 1)) as (a, b):
        _ingest(a)  # before any document, a due trigger starts nothing (nothing to train on)
        deadline = time.monotonic() + 60
        while not (started := a.http.get("/admin/jobs?kind=retrain", headers=ADMIN).json()):
            assert time.monotonic() < deadline, "the scheduler started no job"
            time.sleep(0.2)
        time.sleep(4)  # eight more looks by each of the three schedulers
        jobs = b.http.get("/admin/jobs?kind=retrain", headers=ADMIN).json()
        assert [j["id"] for j in jobs] == [started[0]["id"]], jobs
        engine = sqlalchemy.create_engine(pg_server.url(database))
        with engine.connect() as conn:
            holders = conn.execute(
                sqlalchemy.text("SELECT owner FROM leases WHERE name = 'scheduler'")
            ).all()
        engine.dispose()
        assert len(holders) == 1, holders  # one process looks at the triggers


def _worker_environ(pid: int) -> dict[str, str]:
    """The environment a uvicorn worker of ``ragloop serve`` (process ``pid``) started with."""
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        raw = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        env = dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
        if "PROMETHEUS_MULTIPROC_DIR" in env:
            return env
    raise AssertionError("no worker process with PROMETHEUS_MULTIPROC_DIR")


def _queries_total(text: str) -> float:
    found = re.findall(r"^ragloop_queries_total\{[^}]*\} (\S+)$", text, re.M)
    return sum(float(v) for v in found)

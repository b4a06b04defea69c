"""Leases in the catalog: the writer rule, the one-job rule and the scheduler across processes,
on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragloop.core.errors import ConflictError
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.jobs import ORPHANED, Job, JobStore, job_lease
from ragloop.core.storage.leases import Leases
from ragloop.core.storage.locks import WRITER_LEASE, StoreWriteGuard, WriterLock
from ragloop.finetune.scheduler import SCHEDULER_LEASE, Scheduler


@pytest.fixture
def other(catalog_url: str, catalog: Catalog) -> Iterator[Catalog]:
    """A second connection pool on the same catalog: another process, as far as leases go."""
    cat = Catalog.open(catalog_url)
    yield cat
    cat.close()


def test_one_owner_renew_release_and_expiry(catalog: Catalog, other: Catalog) -> None:
    a = Leases(catalog.engine, ttl_s=0.6, owner="a")
    b = Leases(other.engine, ttl_s=0.6, owner="b")
    assert a.try_acquire("x")
    assert a.try_acquire("x")  # ours already: renewed, still ours
    assert not b.try_acquire("x")
    holder = b.holder("x")
    assert holder is not None and holder[0] == "a" and 0 < holder[1] <= 0.6
    a.release("x")
    assert b.holder("x") is None
    assert b.try_acquire("x")
    assert not a.renew("x")  # not ours: refused, and forgotten
    b._stop.set()  # a dead holder: no more heartbeats
    time.sleep(0.8)
    assert a.try_acquire("x")  # expired, so taken over
    assert not b.renew("x")
    a.close()
    b.close()
    assert a.holder("x") is None  # close releases what is held


def test_heartbeat_keeps_a_lease_past_its_ttl(catalog: Catalog, other: Catalog) -> None:
    a = Leases(catalog.engine, ttl_s=0.6, owner="a")
    b = Leases(other.engine, ttl_s=0.6, owner="b")
    assert a.try_acquire("x")
    time.sleep(1.5)  # 2.5 TTLs: only the heartbeat keeps it
    assert not b.try_acquire("x")
    assert a.holds("x")
    a.close()
    assert b.try_acquire("x")
    b.close()


def test_writer_lock_on_a_lease(catalog: Catalog, other: Catalog, tmp_path: Path) -> None:
    a = Leases(catalog.engine, ttl_s=5, owner="host-a:1")
    b = Leases(other.engine, ttl_s=5, owner="host-b:2")
    first = WriterLock(tmp_path / "a", "ingest", a)
    second = WriterLock(tmp_path / "b", "ingest", b, wait_s=0.3)
    with first:
        assert a.holder(WRITER_LEASE) == (a.owner, pytest.approx(5, abs=1))
        with pytest.raises(ConflictError, match="written by host-a:1"):
            second.acquire()
    second.acquire()  # free again
    second.release()
    assert not (tmp_path / "a" / "writer.lock").exists()  # no local file involved
    a.close()
    b.close()


def test_store_write_guard_across_threads_and_replicas(
    catalog: Catalog, other: Catalog, tmp_path: Path
) -> None:
    """An ingest, delete or promotion on one replica waits for another replica's write, and a
    thread of the same replica for its sibling's; neither is left holding anything."""
    a = Leases(catalog.engine, ttl_s=5, owner="host-a:1")
    b = Leases(other.engine, ttl_s=5, owner="host-b:2")
    guard_a = StoreWriteGuard(WriterLock(tmp_path, "ingest job", a, wait_s=600))
    guard_b = StoreWriteGuard(WriterLock(tmp_path, "ingest job", b, wait_s=600))
    with guard_a:
        assert a.holds(WRITER_LEASE)
        with pytest.raises(ConflictError, match="written by host-a:1"):
            guard_b.acquire(timeout=0.3)  # the replica's wait, not the lock's 600 s
        beside: list[bool] = []
        sibling = threading.Thread(target=lambda: beside.append(guard_a.acquire(timeout=0.2)))
        sibling.start()
        sibling.join()
        assert beside == [False]  # the same replica's other thread: the mutex times out
    assert not a.holds(WRITER_LEASE)
    assert guard_b.acquire(timeout=0.3)
    assert b.holds(WRITER_LEASE) and a.holder(WRITER_LEASE)[0] == "host-b:2"  # type: ignore[index]
    guard_b.release()
    a.close()
    b.close()


def test_one_job_at_a_time_across_owners(catalog: Catalog, other: Catalog) -> None:
    a = JobStore(catalog.engine, Leases(catalog.engine, ttl_s=5, owner="a"))
    b = JobStore(other.engine, Leases(other.engine, ttl_s=5, owner="b"))
    job = a.create("retrain")
    with pytest.raises(ConflictError, match=f"retrain job {job.id} is still queued"):
        b.create("retrain")
    with pytest.raises(ConflictError):
        a.create("retrain")  # the same owner too: one at a time
    b.create("ingest")  # other kinds are not limited
    b.create("ingest")
    a.update(job.id, state="running")
    a.update(job.id, state="promoted")
    assert a.leases is not None and a.leases.holder(job_lease("retrain")) is None
    second = b.create("retrain")
    b.update(second.id, state="failed")
    assert b.create("retrain").state == "queued"
    for store in (a, b):
        assert store.leases is not None
        store.leases.close()


def test_a_dead_owners_job_is_failed_and_the_rule_moves_on(
    catalog: Catalog, other: Catalog
) -> None:
    dead = Leases(catalog.engine, ttl_s=0.5, owner="dead")
    a = JobStore(catalog.engine, dead)
    orphan = a.create("retrain")
    a.update(orphan.id, state="running")
    dead._stop.set()  # the process died: no heartbeat
    b = JobStore(other.engine, Leases(other.engine, ttl_s=5, owner="b"))
    with pytest.raises(ConflictError):
        b.create("retrain")  # still within its TTL
    time.sleep(0.7)
    assert b.recent("retrain")[0].state == "failed"  # reading reaps it
    assert b.get(orphan.id).message == ORPHANED
    assert b.create("retrain").state == "queued"
    assert b.leases is not None
    b.leases.close()


def test_a_final_state_written_elsewhere_does_not_block(catalog: Catalog, other: Catalog) -> None:
    a = JobStore(catalog.engine, Leases(catalog.engine, ttl_s=5, owner="a"))
    job = a.create("retrain")
    JobStore(other.engine).update(job.id, state="failed")  # no leases: the lease stays
    b = JobStore(other.engine, Leases(other.engine, ttl_s=5, owner="b"))
    assert b.create("retrain").state == "queued"  # no unfinished job: the lease is taken over
    for store in (a, b):
        assert store.leases is not None
        store.leases.close()


def test_adopt_for_resumed_jobs(catalog: Catalog, other: Catalog) -> None:
    a = JobStore(catalog.engine, Leases(catalog.engine, ttl_s=5, owner="a"))
    assert not a.adopt("retrain")  # nothing to resume: nothing held
    assert a.leases is not None and a.leases.holder(job_lease("retrain")) is None
    job = JobStore(other.engine).create("retrain")
    JobStore(other.engine).update(job.id, state="re-embedding")
    assert a.adopt("retrain")
    b = JobStore(other.engine, Leases(other.engine, ttl_s=5, owner="b"))
    with pytest.raises(ConflictError, match="re-embedding"):
        b.create("retrain")
    a.update(job.id, state="promoted")
    assert b.create("retrain").state == "queued"
    for store in (a, b):
        assert store.leases is not None
        store.leases.close()


_CONTENDER = """
import sys, time
from ragloop.core.errors import ConflictError
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.jobs import JobStore
from ragloop.core.storage.leases import Leases
cat = Catalog.open(sys.argv[1])
jobs = JobStore(cat.engine, Leases(cat.engine, ttl_s=30))
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
try:
    print("created", jobs.create("retrain").id, flush=True)
except ConflictError as exc:
    print("conflict", exc.message, flush=True)
"""


@pytest.mark.integration  # two fresh interpreters: seconds, so not in make test-fast
def test_two_processes_start_one_job(catalog_url: str, catalog: Catalog) -> None:
    at = time.time() + 4  # both processes are connected by then; they race on the statement
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONTENDER, catalog_url, str(at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert [o.split()[0] for o in outs] == ["conflict", "created"], outs
    created = outs[1].split()[1]
    assert f"retrain job {created} is still queued" in outs[0]
    assert [j.id for j in JobStore(catalog.engine).recent("retrain")] == [created]


class _Manager:
    """What the scheduler needs of a RetrainManager: jobs, running(), start()."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        self.started: list[Job] = []

    def running(self) -> Job | None:
        return next((j for j in self.jobs.recent("retrain", 20) if not j.done), None)

    def start(self, options: Any) -> Job:
        job = self.jobs.create("retrain", {})
        self.started.append(job)
        return job


class _Log:
    def misses_since(self, since: float) -> int:
        return 0


def test_two_schedulers_start_one_job(catalog: Catalog, other: Catalog) -> None:
    managers = [
        _Manager(JobStore(cat.engine, Leases(cat.engine, ttl_s=5, owner=name)))
        for cat, name in ((catalog, "a"), (other, "b"))
    ]
    schedulers = [
        Scheduler(
            m,  # type: ignore[arg-type]
            _Log(),  # type: ignore[arg-type]
            every_hours=0.5 / 3600,
            after_misses=0,
            tick_s=0.05,
            leases=m.jobs.leases,
        )
        for m in managers
    ]
    for s in schedulers:
        s.start()
    time.sleep(1.5)
    for s in schedulers:
        s.stop()
    started = [j for m in managers for j in m.started]
    assert len(started) == 1
    assert len(JobStore(catalog.engine).recent("retrain")) == 1
    holders = {m.jobs.leases.holder(SCHEDULER_LEASE) for m in managers if m.jobs.leases}
    assert {h[0] for h in holders if h} in ({"a"}, {"b"})  # one scheduler looks at triggers
    for m in managers:
        assert m.jobs.leases is not None
        m.jobs.leases.close()


def test_renewing_concurrently_from_threads(catalog: Catalog) -> None:
    leases = Leases(catalog.engine, ttl_s=5, owner="a")
    names = [f"n{i}" for i in range(8)]
    threads = [threading.Thread(target=leases.try_acquire, args=(n,)) for n in names]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(leases.holds(n) and leases.renew(n) for n in names)
    leases.close()
    assert all(leases.holder(n) is None for n in names)

import threading
import time
from pathlib import Path

from ragloop.core.records import ModelVersion
from ragloop.core.runtime import Runtime
from ragloop.core.storage.jobs import JobStore
from ragloop.core.storage.querylog import QueryLog, QueryRecord
from ragloop.core.storage.vectors import collection_name
from ragloop.finetune.promote import Promoter
from ragloop.finetune.retrain import RetrainManager
from ragloop.finetune.scheduler import Scheduler
from ragloop.ingest.pipeline import Ingestor
from tests.ingest.samples import write_corpus


def test_only_the_newest_versions_keep_their_collections(
    fake_runtime: Runtime, tmp_path: Path
) -> None:
    Ingestor(fake_runtime).ingest([write_corpus(tmp_path / "docs")])
    promoter = Promoter(fake_runtime, threading.Lock())
    inst = fake_runtime.catalog.instance_id()
    for i in range(2, 6):
        mv = ModelVersion(
            f"v{i}",
            "fake-keyword",
            "base",
            24,
            66,
            collection_name(inst, f"v{i}"),
            "candidate",
            time.time() + i,
            {"kind": "full"},
        )
        fake_runtime.catalog.add_version(mv)
        promoter.activate(mv.version, allow_candidate=True)
    status = {v.version: v.status for v in fake_runtime.catalog.list_versions()}
    # keep_versions is 3: v5 active, v4 and v3 kept for rollback, base and v2 dropped
    assert status == {
        "base": "deleted",
        "v2": "deleted",
        "v3": "retired",
        "v4": "retired",
        "v5": "active",
    }
    names = fake_runtime.store.collections()
    assert collection_name(inst, "v3") in names and collection_name(inst, "base") not in names
    promoter.activate("v3")  # rollback to a kept version works
    assert fake_runtime.refresh().version.version == "v3"


def _miss(log: QueryLog, n: int) -> None:
    log.log(
        QueryRecord(
            log.new_id(),
            time.time(),
            f"q{n}",
            5,
            "base",
            "fake",
            "",
            [],
            0.1,
            True,
            ["low_score"],
            1.0,
        )
    )


def test_scheduler_triggers_on_misses_and_time(fake_runtime: Runtime) -> None:
    log = QueryLog(fake_runtime.catalog.engine)
    manager = RetrainManager(
        fake_runtime, log, JobStore(fake_runtime.catalog.engine), threading.Lock(), lambda: None
    )
    off = Scheduler(manager, log, 0, 0)
    assert not off.enabled and off.due() is None
    by_misses = Scheduler(manager, log, 0, 3)
    _miss(log, 1)
    _miss(log, 2)
    assert by_misses.due() is None
    _miss(log, 3)
    assert by_misses.due() == "3 new misses"
    by_time = Scheduler(manager, log, 1 / 3600, 0)  # every second
    assert by_time.due() is None
    time.sleep(1.1)
    assert by_time.due() == "schedule"

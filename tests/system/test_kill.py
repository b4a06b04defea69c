"""``kill -9`` in the middle of an ingest: catalog and Chroma still agree, and a re-run finishes."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragloop.core.runtime import open_runtime
from ragloop.core.settings import Settings
from tests.system.helpers import ragloop_json

pytestmark = pytest.mark.integration


def _documents(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("select count(*) from documents").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_kill_during_ingest_leaves_a_consistent_store(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    n_docs = 2500
    with corpus.open("w") as fh:
        for i in range(n_docs):
            fh.write(
                json.dumps(
                    {"_id": f"d{i}", "title": f"Doc {i}", "text": f"Fact number {i} about cells."}
                )
                + "\n"
            )
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLOOP_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ragloop.cli.main",
            "ingest",
            str(corpus),
            "--data-dir",
            str(data),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while _documents(data / "catalog.sqlite") == 0:
        assert proc.poll() is None, "ingest finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    rt = open_runtime(Settings(data_dir=data))
    try:
        committed = rt.catalog.counts()
        assert 0 < committed["documents"] < n_docs
        vectors = rt.store.ids(rt.active_index().collection)
        catalog_ids = {c.id for batch in rt.catalog.iter_chunks() for c in batch}
        # Every committed chunk has its vector; extra vectors, if any, are journaled for repair.
        assert catalog_ids <= vectors
        pending = {cid for ids in rt.catalog.journal_pending().values() for cid in ids}
        assert vectors - catalog_ids <= pending
    finally:
        rt.close()

    report = ragloop_json("ingest", str(corpus), data_dir=data)
    assert report["added"] + report["unchanged"] == n_docs
    assert report["unchanged"] == committed["documents"]
    check = ragloop_json("check", data_dir=data)
    assert check["ok"] and check["chunks"] == n_docs == check["vectors"]

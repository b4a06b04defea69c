"""``ragloop migrate-catalog``: a SQLite catalog copied into a real PostgreSQL, every row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from ragloop.cli.main import app
from ragloop.core.errors import ConflictError
from ragloop.core.records import ChunkRecord, DocumentRecord, ModelVersion
from ragloop.core.storage import schema
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.copy import copy_catalog
from ragloop.core.storage.jobs import JobStore
from ragloop.core.storage.querylog import QueryLog, QueryRecord


def _fill(catalog: Catalog, n_docs: int = 7) -> None:
    """One row or more in every table."""
    items = []
    for d in range(n_docs):
        doc = DocumentRecord(f"d{d}", f"/x/{d}.txt", f"{d}.txt", f"Doc {d}", "text", "h", 9, 0)
        body = "sailors got scurvy" if d == 0 else f"whale number {d} swims"
        items.append(
            (doc, [ChunkRecord(f"c{d}-{i}", f"d{d}", i, body, "", 0, 9, 3) for i in range(3)])
        )
    catalog.save_documents(items, "rl-x-base")
    catalog.journal_vectors("rl-x-base", ["pending"])
    catalog.add_version(ModelVersion("base", "m", None, 4, 16, "rl-x-base", "candidate", 1.0))
    catalog.set_active("base")
    catalog.set_meta("chunker:base", "sig")
    log = QueryLog(catalog.engine)
    rec = QueryRecord(
        "q1",
        1.0,
        "what cured scurvy",
        5,
        "base",
        "extractive",
        "citrus",
        [("c0-0", 0.9)],
        0.9,
        False,
        [],
        2.0,
    )
    log.log(rec)
    log.add_feedback("q1", "down", ["c0-0"], comment="close")
    JobStore(catalog.engine).create("retrain", {"loss": "mnrl"})
    with catalog.engine.begin() as conn:
        conn.execute(
            insert(schema.api_keys).values(
                id="k1", name="ci", key_hash="h" * 64, prefix="rl-abc", created_at=1.0
            )
        )
        conn.execute(
            insert(schema.synthetic_questions).values(
                chunk_id="c0-0", method="offline", questions=["why scurvy"], created_at=1.0
            )
        )


def test_cli_copies_sqlite_into_postgresql_and_refuses_a_non_empty_target(
    tmp_path: Path, pg_empty_url: str
) -> None:
    source_url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    source = Catalog.open(source_url)
    _fill(source)
    instance = source.instance_id()
    source.close()
    runner = CliRunner()
    args = ["migrate-catalog", "--from", source_url, "--to", pg_empty_url, "--batch-size", "4"]
    done = runner.invoke(app, [*args, "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["ok"] and report["counts_match"] and report["lexical"]["ok"]
    assert report["tables"]["chunks"] == {"source": 21, "target": 21}
    for name in (
        "documents",
        "model_versions",
        "active_pointer",
        "vector_journal",
        "queries",
        "feedback",
        "labelled_pairs",
        "jobs",
        "api_keys",
        "synthetic_questions",
        "meta",
    ):
        assert report["tables"][name]["source"] == report["tables"][name]["target"] >= 1, name
    target = Catalog.open(pg_empty_url)
    assert target.instance_id() == instance  # Chroma's collections keep their names
    assert target.active_version().version == "base"  # type: ignore[union-attr]
    assert target.get_meta("chunker:base") == "sig"
    assert target.journal_pending() == {"rl-x-base": ["pending"]}
    lexical = target.lexical
    assert lexical is not None and [c for c, _ in lexical.search("scurvy", 5)] == [
        "c0-0",
        "c0-1",
        "c0-2",
    ]
    log = QueryLog(target.engine)
    assert log.get("q1").miss_reasons == ["negative_feedback"]
    # the copied ids moved PostgreSQL's sequences: new feedback and pairs get fresh ids
    log.add_feedback("q1", "up", ["c1-0"])
    assert len(log.pairs()) == 2
    target.close()
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "is not empty" in again.output and "documents 7" in again.output


def test_copy_back_into_sqlite_and_the_same_catalog_is_refused(tmp_path: Path, pg_url: str) -> None:
    source = Catalog.open(pg_url)
    _fill(source, n_docs=2)
    target = Catalog.open(f"sqlite:///{tmp_path / 'back.sqlite'}")
    seen: list[tuple[str, int, int]] = []
    report = copy_catalog(source, target, batch_size=2, progress=lambda *a: seen.append(a))
    assert report.ok and report.tables["chunks"] == {"source": 6, "target": 6}
    assert ("chunks", 6, 6) in seen and ("chunks", 0, 6) in seen
    lexical = target.lexical
    assert lexical is not None
    assert [c for c, _ in lexical.search("scurvy", 5)] == ["c0-0", "c0-1", "c0-2"]
    with pytest.raises(ConflictError, match="same catalog"):
        copy_catalog(source, source)
    source.close()
    target.close()

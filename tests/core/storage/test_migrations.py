"""Schema migrations: every older schema ragloop shipped, and an empty database, on SQLite and
PostgreSQL, end as the same catalog as a new one, with every row kept."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import CompileError

from ragloop.core.errors import ConfigError
from ragloop.core.records import ChunkRecord, DocumentRecord, ModelVersion
from ragloop.core.storage import migrations, schema
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.querylog import QueryLog
from tests.pg_server import PostgresServer

OLD = json.loads(Path(__file__).with_name("old_schemas.json").read_text())
OLD_VERSIONS = ["1", "2-from-1", "2", "3", "4"]


def _dialect(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def _old_catalog(url: str, version: str) -> None:
    """An older ragloop's catalog: its tables, and a row in each, as it would have written."""
    number = int(version.split("-")[0])
    engine = create_engine(url)
    with engine.begin() as conn:
        for ddl in OLD[_dialect(url)][version]:
            conn.exec_driver_sql(ddl)
        rows: list[tuple[str, dict[str, Any]]] = [
            (
                "INSERT INTO meta (key, value) VALUES ('schema_version', :v), "
                "('instance_id', 'abcd1234')",
                {"v": str(number)},
            ),
            (
                "INSERT INTO documents (id, path, source, title, format, content_hash, "
                "size_bytes, n_chunks, meta, created_at, updated_at) VALUES ('d1', '/x/a.txt', "
                "'a.txt', 'Scurvy', 'text', 'h', 10, 1, '{\"k\": 1}', 1.0, 2.0)",
                {},
            ),
            (
                "INSERT INTO chunks (id, document_id, seq, text, title, start_char, end_char, "
                "n_tokens) VALUES ('c1', 'd1', 0, 'Sailors got scurvy at sea', 'Scurvy', 0, 25, 5)",
                {},
            ),
            (
                "INSERT INTO model_versions (version, model_ref, parent, dimension, "
                "max_seq_length, collection, status, created_at, info) VALUES ('base', 'm', NULL, "
                "4, 16, 'rl-abcd1234-base', 'active', 1.0, '{}')",
                {},
            ),
            (
                "INSERT INTO active_pointer (id, version, changed_at) VALUES (1, 'base', 1.0)",
                {},
            ),
            (
                "INSERT INTO vector_journal (collection, chunk_id) VALUES ('rl-abcd1234-base', "
                "'gone')",
                {},
            ),
        ]
        if number >= 2:
            rows += [
                (
                    "INSERT INTO queries (id, created_at, question, k, filters, model_version, "
                    "generator, answer, retrieved, top_score, miss, miss_reasons, latency_ms) "
                    "VALUES ('q1', 1.0, 'What is scurvy?', 5, '{}', 'base', 'extractive', "
                    "'A disease.', '[[\"c1\", 0.5]]', 0.5, :miss, '[\"low_score\"]', 3.5)",
                    {"miss": True},
                ),
                (
                    "INSERT INTO feedback (query_id, rating, comment, relevant_chunk_ids, "
                    "created_at) VALUES ('q1', 'down', NULL, '[\"c1\"]', 2.0)",
                    {},
                ),
                (
                    "INSERT INTO labelled_pairs (query_id, question, chunk_id, source, "
                    "created_at) VALUES ('q1', 'What is scurvy?', 'c1', 'feedback', 2.0)",
                    {},
                ),
                (
                    "INSERT INTO jobs (id, kind, state, created_at, progress, message, params, "
                    "result, errors) VALUES ('j1', 'retrain', 'succeeded', 1.0, 1.0, '', '{}', "
                    "'{}', '[]')",
                    {},
                ),
                (
                    "INSERT INTO api_keys (id, name, key_hash, prefix, created_at) VALUES "
                    "('k1', 'ci', 'hash', 'rl-abc', 1.0)",
                    {},
                ),
            ]
        if "synthetic_questions" in inspect(conn).get_table_names():
            rows.append(
                (
                    "INSERT INTO synthetic_questions (chunk_id, method, questions, created_at) "
                    "VALUES ('c1', 'offline', '[\"why scurvy\"]', 1.0)",
                    {},
                )
            )
        for sql, params in rows:
            conn.execute(text(sql), params)
    engine.dispose()


def _type_name(kind: Any, engine: Engine) -> str:
    try:
        return str(kind.compile(dialect=engine.dialect))
    except CompileError:  # FTS5's columns have no type
        return type(kind).__name__


def describe(engine: Engine) -> dict[str, Any]:
    """Everything about a catalog's schema that matters, in a comparable form (column order
    and the names SQLite gives unnamed constraints left out)."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        columns = {
            c["name"]: (
                _type_name(c["type"], engine),
                c["nullable"],
                (c.get("computed") or {}).get("sqltext"),
            )
            for c in insp.get_columns(table)
        }
        indexes = sorted(
            (
                i["name"],
                tuple(str(x) for x in (i.get("expressions") or i["column_names"])),
                bool(i["unique"]),
            )
            for i in insp.get_indexes(table)
        )
        uniques = sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table))
        fks = sorted(
            (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
            for f in insp.get_foreign_keys(table)
        )
        pk = tuple(insp.get_pk_constraint(table)["constrained_columns"])
        out[table] = {"columns": columns, "indexes": indexes, "uniques": uniques, "fks": fks}
        out[table]["pk"] = pk
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            out["objects"] = sorted(
                tuple(r)
                for r in conn.exec_driver_sql(
                    "SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view')"
                )
            )
        else:
            out["objects"] = sorted(
                tuple(r)
                for r in conn.execute(
                    text(
                        "SELECT 'config', cfgname FROM pg_ts_config WHERE cfgname LIKE "
                        "'ragloop%' UNION ALL SELECT 'extension', extname FROM pg_extension"
                    )
                )
            )
    return out


def _fresh_schema(url: str) -> dict[str, Any]:
    catalog = Catalog.open(url)
    try:
        return describe(catalog.engine)
    finally:
        catalog.close()


def test_the_steps_end_at_the_schema_version() -> None:
    versions = [m.version for m in migrations.MIGRATIONS]
    assert versions == list(range(1, schema.SCHEMA_VERSION + 1))


def test_an_empty_database_runs_every_step_and_a_second_open_none(
    empty_catalog_url: str,
) -> None:
    catalog = Catalog.open(empty_catalog_url)
    assert catalog.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
    with catalog.engine.connect() as conn:
        ran = migrations.history(conn)
    assert [r["version"] for r in ran] == list(range(1, schema.SCHEMA_VERSION + 1))
    assert all(r["applied_at"] is not None for r in ran)
    assert migrations.migrate(catalog.engine) == []
    catalog.close()


@pytest.mark.parametrize("version", OLD_VERSIONS)
def test_every_older_schema_upgrades_to_a_new_catalog_keeping_its_rows(
    version: str, empty_catalog_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    number = int(version.split("-")[0])
    _old_catalog(empty_catalog_url, version)
    catalog = Catalog.open(empty_catalog_url)
    # the same schema as a catalog made today, on the same database
    if _dialect(empty_catalog_url) == "sqlite":
        fresh_url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    else:
        fresh_url = request.getfixturevalue("pg_url")
    assert describe(catalog.engine) == _fresh_schema(fresh_url)
    assert catalog.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
    with catalog.engine.connect() as conn:
        ran = migrations.history(conn)
    assert [(r["version"], r["applied_at"] is None) for r in ran] == [
        (v, v <= number) for v in range(1, schema.SCHEMA_VERSION + 1)
    ]
    # every row is there, read through today's code
    assert catalog.instance_id() == "abcd1234"
    doc = catalog.get_document("d1")
    assert doc is not None and doc.meta == {"k": 1} and doc.size_bytes == 10
    assert catalog.chunks_of("d1")[0].text == "Sailors got scurvy at sea"
    assert catalog.active_version().collection == "rl-abcd1234-base"  # type: ignore[union-attr]
    assert catalog.journal_pending() == {"rl-abcd1234-base": ["gone"]}
    # the lexical index holds the chunks written before it existed
    lexical = catalog.lexical
    assert lexical is not None and lexical.verify().ok
    assert [cid for cid, _ in lexical.search("sailor", 5)] == ["c1"]
    # a query-only version shares its parent's collection (schema 1 forbade it)
    catalog.add_version(
        ModelVersion("qa", "m", "base", 4, 16, "rl-abcd1234-base", "candidate", 2.0)
    )
    log = QueryLog(catalog.engine)
    if number >= 2:
        rec = log.get("q1")
        assert (rec.miss, rec.miss_reasons, rec.retrieved) == (True, ["low_score"], [("c1", 0.5)])
        assert rec.raw_question is None
        assert [p["chunk_id"] for p in log.pairs()] == ["c1"]
    # new writes work, ids of autoincrement tables included
    assert log.add_pair("What is scurvy?", "c1", "import", None)
    assert not log.add_pair("What is scurvy?", "c1", "import", None)
    catalog.save_documents(
        [
            (
                DocumentRecord("d2", "/x/b.txt", "b.txt", "T", "text", "h", 5, 0),
                [ChunkRecord("c2", "d2", 0, "lemons at sea", "", 0, 13, 3)],
            )
        ],
        "rl-abcd1234-base",
    )
    assert [cid for cid, _ in lexical.search("lemon", 5)] == ["c2"]
    catalog.close()


def test_a_step_that_fails_leaves_the_catalog_at_the_step_before(
    empty_catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _old_catalog(empty_catalog_url, "3")
    real = migrations.MIGRATIONS

    def broken(conn: Any) -> None:
        real[3].apply(conn)  # adds queries.raw_question, then dies
        raise RuntimeError("killed mid-step")

    steps = (*real[:3], migrations.Migration(4, real[3].description, broken), *real[4:])
    monkeypatch.setattr(migrations, "MIGRATIONS", steps)
    with pytest.raises(RuntimeError, match="killed"):
        Catalog.open(empty_catalog_url)
    engine = create_engine(empty_catalog_url)
    with engine.connect() as conn:
        assert migrations.read_version(conn) == 3
        assert "raw_question" not in {c["name"] for c in inspect(conn).get_columns("queries")}
        assert not inspect(conn).has_table("schema_migrations")
    engine.dispose()
    monkeypatch.setattr(migrations, "MIGRATIONS", real)
    catalog = Catalog.open(empty_catalog_url)
    assert catalog.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
    assert QueryLog(catalog.engine).get("q1").raw_question is None
    catalog.close()


def test_concurrent_openers_of_an_empty_database_wait_for_each_other(
    empty_catalog_url: str,
) -> None:
    errors: list[BaseException] = []
    opened: list[Catalog] = []

    def open_it() -> None:
        try:
            opened.append(Catalog.open(empty_catalog_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and len(opened) == 3
    with opened[0].engine.connect() as conn:
        assert [r["version"] for r in migrations.history(conn)] == list(
            range(1, schema.SCHEMA_VERSION + 1)
        )
    for c in opened:
        c.close()


def test_a_newer_catalog_is_refused(catalog_url: str) -> None:
    catalog = Catalog.open(catalog_url)
    catalog.set_meta("schema_version", str(schema.SCHEMA_VERSION + 1))
    catalog.close()
    with pytest.raises(ConfigError, match="newer than this ragloop"):
        Catalog.open(catalog_url)


def test_other_databases_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="unsupported catalog database 'mysql'"):
        Catalog.open("mysql+pymysql://u:secret@localhost/db")


def test_a_postgres_catalog_built_by_the_old_code_loses_its_length_limits(
    pg_server: PostgresServer,
) -> None:
    name = pg_server.create_database()
    url = pg_server.url(name)
    try:
        _old_catalog(url, "4")
        catalog = Catalog.open(url)
        with catalog.engine.connect() as conn:
            types = {c["name"]: str(c["type"]) for c in inspect(conn).get_columns("api_keys")}
        assert types["name"] == "TEXT"
        catalog.close()
    finally:
        pg_server.drop_database(name)

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import update

from ragloop.core.errors import ConfigError, NotFoundError
from ragloop.core.records import ChunkRecord, DocumentRecord, ModelVersion
from ragloop.core.storage import schema
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.querylog import QueryLog


def _doc(doc_id: str, path: str = "/x/a.txt", digest: str = "h1") -> DocumentRecord:
    return DocumentRecord(doc_id, path, path, "T", "text", digest, 10, 0)


def _chunk(cid: str, doc_id: str, seq: int = 0) -> ChunkRecord:
    return ChunkRecord(cid, doc_id, seq, f"text {cid}", "T", 0, 5, 3)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.open(f"sqlite:///{tmp_path / 'c.sqlite'}")


def test_wal_mode(catalog: Catalog) -> None:
    with catalog.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_save_replaces_exactly_a_documents_chunks(catalog: Catalog) -> None:
    removed = catalog.save_documents(
        [
            (_doc("d1"), [_chunk("a", "d1"), _chunk("b", "d1", 1)]),
            (_doc("d2"), [_chunk("z", "d2")]),
        ],
        "coll",
    )
    assert removed == []
    removed = catalog.save_documents(
        [(_doc("d1", digest="h2"), [_chunk("b", "d1"), _chunk("c", "d1", 1)])], "coll"
    )
    assert removed == ["a"]
    assert [c.id for c in catalog.chunks_of("d1")] == ["b", "c"]
    assert catalog.chunks_of("d1")[0].seq == 0  # a kept chunk takes its new position
    assert [c.id for c in catalog.chunks_of("d2")] == ["z"]
    assert catalog.get_document("d1").content_hash == "h2"  # type: ignore[union-attr]
    assert catalog.get_document("d1").n_chunks == 2  # type: ignore[union-attr]
    # the removed id is journaled in the same transaction, for the vector delete
    assert catalog.journal_pending() == {"coll": ["a"]}
    assert catalog.counts() == {"documents": 2, "chunks": 3}


def test_delete_documents_and_journal(catalog: Catalog) -> None:
    catalog.save_documents([(_doc("d1"), [_chunk("a", "d1"), _chunk("b", "d1", 1)])], "coll")
    assert sorted(catalog.delete_documents(["d1", "missing"], "coll")) == ["a", "b"]
    assert catalog.get_document("d1") is None
    assert catalog.missing_chunks(["a", "b"]) == ["a", "b"]
    catalog.journal_clear("coll", ["a", "b"])
    assert catalog.journal_pending() == {}


def test_documents_under_matches_paths_not_prefixes(catalog: Catalog) -> None:
    catalog.save_documents(
        [
            (_doc("1", "/data/docs/a.md"), []),
            (_doc("2", "/data/docs/sub/b.md"), []),
            (_doc("3", "/data/docs2/c.md"), []),
        ],
        "coll",
    )
    assert set(catalog.documents_under("/data/docs")) == {"1", "2"}
    assert set(catalog.documents_under("/data/docs/a.md")) == {"1"}


def test_versions_and_active_pointer(catalog: Catalog) -> None:
    assert catalog.active_version() is None
    for v in ("base", "v2"):
        catalog.add_version(ModelVersion(v, "m", None, 4, 16, f"c-{v}", "candidate", 1.0))
    catalog.set_active("base")
    assert catalog.active_version().version == "base"  # type: ignore[union-attr]
    catalog.set_active("v2")
    assert catalog.active_version().version == "v2"  # type: ignore[union-attr]
    assert catalog.get_version("base").status == "retired"
    with pytest.raises(NotFoundError, match="known: base, v2"):
        catalog.get_version("nope")


def test_instance_id_is_stable(catalog: Catalog) -> None:
    assert catalog.instance_id() == catalog.instance_id()
    assert len(catalog.instance_id()) == 8


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    cat = Catalog.open(url)
    with cat.engine.begin() as conn:
        conn.execute(update(schema.meta).values(value=str(schema.SCHEMA_VERSION + 1)))
    cat.close()
    with pytest.raises(ConfigError, match="newer"):
        Catalog.open(url)


def test_schema_3_catalog_gains_raw_question_and_keeps_its_queries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    cat = Catalog.open(url)
    with cat.engine.begin() as conn:  # make it a schema 3 catalog with one logged query
        conn.exec_driver_sql("ALTER TABLE queries DROP COLUMN raw_question")
        conn.execute(update(schema.meta).values(value="3"))
        conn.exec_driver_sql(
            "INSERT INTO queries (id, created_at, question, k, filters, model_version, "
            "generator, answer, retrieved, miss, miss_reasons, latency_ms) VALUES "
            "('q1', 1.0, 'What is scurvy?', 5, '{}', 'base', 'extractive', 'A disease.', "
            "'[]', 1, '[\"low_score\"]', 3.5)"
        )
    cat.close()
    assert schema.SCHEMA_VERSION == 4
    cat = Catalog.open(url)
    assert cat.get_meta("schema_version") == "4"
    rec = QueryLog(cat.engine).get("q1")
    assert (rec.question, rec.raw_question, rec.miss_reasons) == (
        "What is scurvy?",
        None,
        ["low_score"],
    )
    QueryLog(cat.engine).log(replace(rec, id="q2", question="Why (scurvy)?", raw_question="Why?"))
    cat.close()
    again = Catalog.open(url)  # opening an upgraded catalog changes nothing
    assert QueryLog(again.engine).get("q2").raw_question == "Why?"
    with again.engine.connect() as conn:
        assert schema.add_columns(conn, 3) == []
    again.close()


def test_chunks_for_hits_joins_each_chunk_to_its_document(catalog: Catalog) -> None:
    d1 = DocumentRecord("d1", "/x/a.txt", "upload:a.txt", "Doc One", "text", "h1", 10, 0)
    catalog.save_documents(
        [(d1, [_chunk("a", "d1"), _chunk("b", "d1", 1)]), (_doc("d2"), [_chunk("z", "d2")])],
        "coll",
    )
    got = catalog.chunks_for_hits(["b", "missing", "z"])
    assert set(got) == {"b", "z"}  # an id the catalog lacks is simply absent
    chunk, title, source = got["b"]
    assert chunk == catalog.get_chunks(["b"])["b"]
    assert (title, source) == ("Doc One", "upload:a.txt")
    assert got["z"][1:] == ("T", "/x/a.txt")
    # more ids than one statement may bind
    assert catalog.chunks_for_hits(["a"] * 1200) == {"a": catalog.chunks_for_hits(["a"])["a"]}

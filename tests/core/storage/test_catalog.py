"""The catalog's documents, chunks, journal, versions and meta, on SQLite and PostgreSQL."""

import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from ragloop.core.errors import ConfigError, NotFoundError, StoreError
from ragloop.core.records import ChunkRecord, DocumentRecord, ModelVersion
from ragloop.core.storage import schema
from ragloop.core.storage.catalog import Catalog, display_url, normalize_url
from ragloop.core.storage.querylog import QueryLog


def _doc(doc_id: str, path: str = "/x/a.txt", digest: str = "h1") -> DocumentRecord:
    return DocumentRecord(doc_id, path, path, "T", "text", digest, 10, 0)


def _chunk(cid: str, doc_id: str, seq: int = 0) -> ChunkRecord:
    return ChunkRecord(cid, doc_id, seq, f"text {cid}", "T", 0, 5, 3)


def test_sqlite_is_in_wal_mode(tmp_path: Path) -> None:
    catalog = Catalog.open(f"sqlite:///{tmp_path / 'c.sqlite'}")
    with catalog.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    catalog.close()


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


def test_documents_under_takes_like_wildcards_literally(catalog: Catalog) -> None:
    catalog.save_documents(
        [(_doc("1", "/data/my_docs/a.md"), []), (_doc("2", "/data/myXdocs/b.md"), [])], "coll"
    )
    assert set(catalog.documents_under("/data/my_docs")) == {"1"}
    assert set(catalog.documents_under("/data/my%")) == set()


def test_meta_and_the_active_pointer_are_upserts(catalog: Catalog) -> None:
    catalog.set_meta("chunker:base", "a")
    catalog.set_meta("chunker:base", "b")
    assert catalog.get_meta("chunker:base") == "b" and catalog.get_meta("nope") is None
    catalog.add_version(ModelVersion("base", "m", None, 4, 16, "c-base", "candidate", 1.0))
    catalog.set_active("base")
    catalog.set_active("base")
    with catalog.engine.connect() as conn:
        assert conn.execute(select(schema.active_pointer.c.id)).scalars().all() == [1]


def test_journaling_an_id_twice_keeps_one_entry(catalog: Catalog) -> None:
    catalog.journal_vectors("coll", ["a", "b", "a"])
    catalog.journal_vectors("coll", ["b", "c"])
    catalog.journal_vectors("other", ["a"])
    pending = catalog.journal_pending()
    assert sorted(pending["coll"]) == ["a", "b", "c"] and pending["other"] == ["a"]
    catalog.journal_vectors("coll", [f"x{i}" for i in range(1200)])  # over one statement's batch
    assert len(catalog.journal_pending()["coll"]) == 1203


def test_concurrent_first_calls_agree_on_the_instance_id(catalog_url: str) -> None:
    catalogs = [Catalog.open(catalog_url) for _ in range(3)]
    ids: list[str] = []
    threads = [threading.Thread(target=lambda c=c: ids.append(c.instance_id())) for c in catalogs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(ids) == 3 and len(set(ids)) == 1
    for c in catalogs:
        c.close()


def test_values_sqlite_takes_are_taken_everywhere(catalog: Catalog) -> None:
    # PostgreSQL would refuse a NUL character, a value longer than a declared VARCHAR length,
    # or a size above 2**31; SQLite takes all three, so the catalog makes PostgreSQL take them.
    long_id = "d" * 300
    doc = DocumentRecord(long_id, "/x/big.bin", "big", "T\x00itle", "text", "h", 5 * 2**30, 0)
    catalog.save_documents([(doc, [_chunk("a", long_id)])], "c" * 200)
    got = catalog.get_document(long_id)
    assert got is not None and got.size_bytes == 5 * 2**30
    assert got.title == ("T\ufffditle" if catalog.dialect == "postgresql" else "T\x00itle")
    log = QueryLog(catalog.engine)
    question = "Warum " * 1000  # a pair's question beyond what a B-tree entry holds
    assert log.add_pair(question, "a", "import", None)
    assert not log.add_pair(question, "a", "import", None)
    assert log.pairs()[0]["question"] == question


def test_a_url_is_shown_without_its_password() -> None:
    url = "postgresql+psycopg://ragloop:s3cret@db.example:5432/ragloop"
    assert display_url(url) == "postgresql+psycopg://ragloop:***@db.example:5432/ragloop"
    assert normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ConfigError, match="not a database URL"):
        Catalog.open("nonsense")


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match=r"cannot open catalog .*:\*\*\*@") as info:
        Catalog.open("postgresql://ragloop:s3cret@127.0.0.1:9/ragloop?connect_timeout=1")
    assert "s3cret" not in str(info.value)


def test_writers_replacing_one_document_at_once_take_turns(catalog_url: str) -> None:
    # Two processes (hosts, with PostgreSQL) re-ingest the same document concurrently: each
    # transaction reads the chunk set the other committed, so neither fails and the result is
    # exactly one writer's chunks.
    catalogs = [Catalog.open(catalog_url) for _ in range(4)]
    catalogs[0].save_documents([(_doc("d1"), [_chunk("base", "d1")])], "coll")
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for round_ in range(5):
                chunks = [_chunk(f"w{n}-{round_}-{i}", "d1", i) for i in range(3)]
                catalogs[n].save_documents([(_doc("d1", digest=f"w{n}"), chunks)], "coll")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    doc = catalogs[0].get_document("d1")
    assert doc is not None
    ids = [c.id for c in catalogs[0].chunks_of("d1")]
    assert ids == [f"{doc.content_hash}-4-{i}" for i in range(3)]
    assert catalogs[0].counts()["chunks"] == 3
    for c in catalogs:
        c.close()

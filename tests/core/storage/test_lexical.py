"""The lexical index: FTS5 in a SQLite catalog, kept exact by triggers, and the generated
tsvector column with its GIN index in a PostgreSQL one; the same behaviour from both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, text, update

from ragloop.core.errors import InvalidInputError
from ragloop.core.records import ChunkRecord, DocumentRecord
from ragloop.core.runtime import Runtime
from ragloop.core.storage import schema
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.lexical import (
    FTS_TABLE,
    KEYS_TABLE,
    PG_COLUMN,
    PG_CONFIG,
    PG_INDEX,
    LexicalIndex,
    PostgresLexicalIndex,
    match_expression,
    tsquery_expression,
)
from ragloop.ingest.pipeline import Ingestor
from ragloop.ingest.verify import check_index


def _doc(doc_id: str, source: str = "a.txt") -> DocumentRecord:
    return DocumentRecord(doc_id, f"/x/{doc_id}", source, "T", "text", "h", 10, 0)


def _chunk(cid: str, doc_id: str, body: str, title: str = "", seq: int = 0) -> ChunkRecord:
    return ChunkRecord(cid, doc_id, seq, body, title, 0, len(body), 3)


@pytest.fixture
def sqlite_catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog.open(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield cat
    cat.close()


@pytest.fixture
def pg_catalog(pg_url: str) -> Iterator[Catalog]:
    cat = Catalog.open(pg_url)
    yield cat
    cat.close()


def _lex(catalog: Catalog) -> LexicalIndex:
    lex = catalog.lexical
    assert lex is not None
    return lex


def _ids(catalog: Catalog, query: str, k: int = 10, **where: str) -> list[str]:
    return [cid for cid, _ in _lex(catalog).search(query, k, where or None)]


def _seed(catalog: Catalog) -> None:
    catalog.save_documents(
        [
            (
                _doc("d1"),
                [
                    _chunk("a", "d1", "scurvy scurvy scurvy sailors"),
                    _chunk("b", "d1", "scurvy and vitamin deficiency", seq=1),
                ],
            ),
            (_doc("d2", "b.txt"), [_chunk("c", "d2", "volcano lava", title="Scurvy > Ships")]),
        ],
        "coll",
    )


def test_bm25_ranks_term_frequency_and_title_is_indexed(catalog: Catalog) -> None:
    _seed(catalog)
    # c has the term once in a short title, b once in a longer text: per-column length
    # normalisation puts b (title column average length 0.67) ahead.
    assert _ids(catalog, "scurvy") == ["a", "b", "c"]
    assert _ids(catalog, "ships") == ["c"]  # only in the heading path
    assert _ids(catalog, "scurvy", k=1) == ["a"]
    scores = [s for _, s in _lex(catalog).search("scurvy", 10)]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0


def test_porter_stemming_and_diacritics(catalog: Catalog) -> None:
    catalog.save_documents(
        [(_doc("d1"), [_chunk("a", "d1", "Café résumé"), _chunk("b", "d1", "x", seq=1)])], "c"
    )
    assert _ids(catalog, "cafe") == ["a"]
    assert _ids(catalog, "RÉSUMÉ") == ["a"]
    catalog.save_documents([(_doc("d2"), [_chunk("s", "d2", "The sailors were sailing")])], "c")
    assert _ids(catalog, "sailor") == ["s"]  # porter: sailors -> sailor
    assert _ids(catalog, "sails") == ["s"]  # sailing -> sail


def test_replace_and_delete_keep_entries_exact(catalog: Catalog) -> None:
    lex = _lex(catalog)
    _seed(catalog)
    assert lex.count() == 3
    catalog.save_documents(
        [
            (
                _doc("d1"),
                [
                    _chunk("b", "d1", "scurvy and vitamin deficiency"),
                    _chunk("n", "d1", "citrus", seq=1),
                ],
            )
        ],
        "coll",
    )
    assert _ids(catalog, "sailors") == []  # chunk a is gone with its entry
    assert _ids(catalog, "citrus") == ["n"]
    assert lex.count() == 3 and lex.verify().ok
    # An update of a chunk's text or title (no such path today) re-indexes it.
    with catalog.engine.begin() as conn:
        conn.execute(update(schema.chunks).where(schema.chunks.c.id == "n").values(text="lemon"))
    assert _ids(catalog, "citrus") == [] and _ids(catalog, "lemon") == ["n"]
    catalog.delete_documents(["d1"], "coll")
    assert _ids(catalog, "scurvy") == ["c"]
    assert lex.count() == 1 and lex.verify().ok
    # A cascade from the documents table (no explicit chunk delete) fires the trigger too.
    with catalog.engine.begin() as conn:
        conn.execute(schema.documents.delete())
    assert lex.count() == 0 and lex.verify().ok


def test_stop_words_and_a_query_of_only_stop_words(catalog: Catalog) -> None:
    _seed(catalog)
    assert match_expression("What is the scurvy of it?") == '"scurvy"'
    assert _ids(catalog, "what is the scurvy") == _ids(catalog, "scurvy")
    assert match_expression("the of and is") is None
    assert _ids(catalog, "the of and is") == []
    assert _ids(catalog, "?!  ...") == []


@pytest.mark.parametrize(
    "query",
    [
        'he said "scurvy',
        "scurvy*",
        "-scurvy",
        "NEAR(scurvy sailors)",
        "scurvy AND OR NOT sailors",
        "title:scurvy",
        "^scurvy {a b} (x) + ' ; --",
        "scurvy 壊血病 😀 ß",
    ],
)
def test_special_characters_are_text_not_syntax(catalog: Catalog, query: str) -> None:
    _seed(catalog)
    assert _ids(catalog, query)[0] == "a"


def test_near_and_operators_are_searchable_words(catalog: Catalog) -> None:
    catalog.save_documents([(_doc("d1"), [_chunk("a", "d1", "near the or gate")])], "c")
    assert _ids(catalog, "NEAR") == ["a"]
    assert _ids(catalog, "OR gate") == ["a"]


def test_filters_like_the_dense_search(catalog: Catalog) -> None:
    _seed(catalog)
    assert _ids(catalog, "scurvy", document_id="d2") == ["c"]
    assert _ids(catalog, "scurvy", source="a.txt") == ["a", "b"]
    assert _ids(catalog, "scurvy", source="a.txt", document_id="d2") == []
    with pytest.raises(InvalidInputError, match="unknown filter"):
        _ids(catalog, "scurvy", colour="red")


def test_a_rolled_back_transaction_leaves_no_entry(catalog: Catalog) -> None:
    _seed(catalog)
    with pytest.raises(RuntimeError), catalog.engine.begin() as conn:
        conn.execute(
            insert(schema.chunks).values(
                id="x",
                document_id="d1",
                seq=9,
                text="kraken",
                title="",
                start_char=0,
                end_char=6,
                n_tokens=1,
            )
        )
        # the entry is written by the statement that wrote the chunk
        if catalog.dialect == "sqlite":
            entries = f"SELECT count(*) FROM {KEYS_TABLE}"
        else:
            entries = f"SELECT count({PG_COLUMN}) FROM chunks WHERE length({PG_COLUMN}) > 0"
        assert conn.execute(text(entries)).scalar_one() == 4
        raise RuntimeError("killed mid-ingest")
    assert _ids(catalog, "kraken") == []
    assert _lex(catalog).count() == 3 and _lex(catalog).verify().ok


def test_an_old_sqlite_catalog_is_back_filled_once_on_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    catalog = Catalog.open(url)
    _seed(catalog)
    with catalog.engine.begin() as conn:  # make it a schema-2 catalog: no lexical objects
        for trig in ("insert", "delete", "update"):
            conn.execute(text(f"DROP TRIGGER chunks_lexical_{trig}"))
        conn.execute(text(f"DROP TABLE {FTS_TABLE}"))
        conn.execute(text("DROP VIEW chunks_lexical_source"))
        conn.execute(text(f"DROP TABLE {KEYS_TABLE}"))
        conn.execute(
            update(schema.meta).values(value="2").where(schema.meta.c.key == "schema_version")
        )
    catalog.close()
    reopened = Catalog.open(url)
    assert reopened.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
    assert _ids(reopened, "scurvy") == ["a", "b", "c"]
    assert _lex(reopened).verify().ok
    # Opening again changes nothing (no second back-fill), and new chunks are indexed.
    again = Catalog.open(url)
    again.save_documents([(_doc("d3"), [_chunk("z", "d3", "kraken")])], "coll")
    assert _lex(again).count() == 4 and _ids(again, "kraken") == ["z"]


def test_verify_finds_missing_and_orphaned_fts5_entries(sqlite_catalog: Catalog) -> None:
    catalog = sqlite_catalog
    _seed(catalog)
    lex = _lex(catalog)
    good = lex.verify()
    assert good.ok and good.to_dict()["entries"] == good.chunks == 3
    with catalog.engine.begin() as conn:  # chunk a loses its index entry
        conn.execute(
            text(
                f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, title, text) SELECT 'delete', k.id, "
                f"c.title, c.text FROM {KEYS_TABLE} k JOIN chunks c ON c.id = k.chunk_id "
                "WHERE c.id = 'a'"
            )
        )
    bad = lex.verify()
    assert (bad.missing, bad.orphans, bad.integrity_ok, bad.ok) == (1, 0, False, False)
    with catalog.engine.begin() as conn:  # an entry nothing in the catalog owns
        conn.execute(text(f"INSERT INTO {FTS_TABLE}(rowid, title, text) VALUES (999, '', 'x')"))
    worse = lex.verify()
    assert (worse.missing, worse.orphans) == (1, 1) and worse.error
    with catalog.engine.begin() as conn:  # a key whose chunk is gone
        conn.execute(text(f"INSERT INTO {KEYS_TABLE}(chunk_id) VALUES ('ghost')"))
    assert lex.verify().orphans == 2


def test_check_reports_the_lexical_index(tmp_path: Path, fake_runtime_any: Runtime) -> None:
    rt = fake_runtime_any
    (tmp_path / "a.txt").write_text("scurvy vitamin citrus sailors\n\nwhale ocean coral reef")
    Ingestor(rt).ingest([tmp_path / "a.txt"])
    report = check_index(rt)
    assert report.ok and report.lexical is not None
    assert report.lexical["entries"] == report.chunks > 0 and report.lexical["ok"]
    with rt.catalog.engine.begin() as conn:
        if rt.catalog.dialect == "sqlite":
            conn.execute(text(f"DELETE FROM {KEYS_TABLE}"))
        else:  # the configuration changed under the stored vectors: every one is stale
            conn.execute(
                text(f"ALTER TEXT SEARCH CONFIGURATION {PG_CONFIG} DROP MAPPING FOR asciiword")
            )
    broken = check_index(rt)
    assert not broken.ok and broken.to_dict()["lexical"]["missing"] == broken.chunks


def test_a_search_limited_to_the_text_column_never_matches_a_title(catalog: Catalog) -> None:
    _seed(catalog)
    assert match_expression("the Ships", ["text"]) == 'text : ( "ships" )'
    assert (
        match_expression("ships lava", ["title", "text"]) == '{title text} : ( "ships" OR "lava" )'
    )
    assert match_expression("the of", ["text"]) is None
    lex = _lex(catalog)
    # "ships" is only in c's heading path; "scurvy" is in c's heading path and a's and b's text
    assert lex.search("ships", 10, columns=["text"]) == []
    assert [cid for cid, _ in lex.search("scurvy", 10, columns=["text"])] == ["a", "b"]
    assert [cid for cid, _ in lex.search("scurvy", 10, columns=["title"])] == ["c"]
    # the default still searches both columns; filters combine with a column limit
    assert _ids(catalog, "ships") == ["c"]
    assert lex.search("scurvy", 10, {"document_id": "d2"}, columns=["text"]) == []
    with pytest.raises(InvalidInputError, match="unknown lexical column body"):
        lex.search("scurvy", 10, columns=["body"])
    with pytest.raises(InvalidInputError, match="unknown lexical column"):
        lex.search("scurvy", 10, columns=[])


def test_a_titles_words_add_nothing_to_a_text_column_score(catalog: Catalog) -> None:
    # Two chunks with the same text, one titled with the query's word: over all columns the
    # title counts (and a chunk matching only in its title is found); limited to the text, a
    # title's words neither match nor score.
    body = "volcano lava flows down the mountain"
    catalog.save_documents(
        [
            (_doc("d1"), [_chunk("t", "d1", body, title="Lava")]),
            (_doc("d2"), [_chunk("u", "d2", body)]),
            (_doc("d3"), [_chunk("v", "d3", "bread flour yeast", title="Lava lava")]),
        ],
        "coll",
    )
    lex = _lex(catalog)
    full = dict(lex.search("lava", 10))
    assert set(full) == {"v", "t", "u"} and full["t"] > full["u"] and list(full)[2] == "u"
    text_only = dict(lex.search("lava", 10, columns=["text"]))
    assert set(text_only) == {"u", "t"}
    if catalog.dialect == "sqlite":
        assert text_only["u"] == pytest.approx(full["u"]) and text_only["t"] < full["t"]
        # FTS5's bm25 weighs a column by its own length (v's short title first) and normalises
        # by the whole row's: the titled chunk, a longer row, is a little behind the other
        assert list(full) == ["v", "t", "u"] and list(text_only) == ["u", "t"]
    else:
        # one vector per chunk, its length the chunk's distinct lexemes: t and v tie (id
        # order); limited to the text, the two chunks with the same text score the same (and
        # "lava" is rarer there: v holds it only in its title)
        assert list(full)[:2] == ["t", "v"] and text_only["t"] == pytest.approx(text_only["u"])


# ---- PostgreSQL: the generated column, its GIN index and BM25 in SQL ------------------------


def test_tsquery_limits_terms_to_the_weights_of_the_columns() -> None:
    assert tsquery_expression("What is the scurvy of ships?") == "'scurvy' | 'ships'"
    assert tsquery_expression("ships lava", ["text"]) == "'ships':B | 'lava':B"
    assert tsquery_expression("ships", ["title", "text"]) == "'ships':AB"
    assert tsquery_expression("the of") is None
    with pytest.raises(InvalidInputError, match="unknown lexical column body"):
        tsquery_expression("x", ["body"])


def test_pg_bm25_weighs_rare_terms_over_common_ones(pg_catalog: Catalog) -> None:
    # "ocean" is in every chunk, "kraken" in one: BM25's idf puts the kraken chunk first even
    # though another says "ocean" three times (ts_rank would not).
    catalog = pg_catalog
    chunks = [_chunk("k", "d1", "kraken ocean")]
    chunks += [_chunk(f"o{i}", "d1", "ocean ocean ocean", seq=i + 1) for i in range(5)]
    catalog.save_documents([(_doc("d1"), chunks)], "coll")
    ranked = _lex(catalog).search("ocean kraken", 10)
    assert ranked[0][0] == "k" and len(ranked) == 6
    assert ranked[0][1] > 2 * ranked[1][1]


def test_pg_statistics_are_estimated_and_cached_on_a_large_catalog(pg_catalog: Catalog) -> None:
    catalog = pg_catalog
    _seed(catalog)
    lex = _lex(catalog)
    assert isinstance(lex, PostgresLexicalIndex)
    lex.exact_stats_below = 2  # make three chunks a "large" catalog
    first = lex.search("scurvy", 10)
    with catalog.engine.begin() as conn:
        conn.execute(text("ANALYZE chunks"))
    assert lex.search("scurvy", 10) == first  # the cached statistics
    lex._stats = (3.0, 3.0, 0.0)  # expired: re-read from the estimate and a sample
    assert [cid for cid, _ in lex.search("scurvy", 10)] == ["a", "b", "c"]
    assert lex._stats is not None and lex._stats[0] == 3.0


def test_pg_verify_finds_stale_vectors_and_a_missing_index(pg_catalog: Catalog) -> None:
    catalog = pg_catalog
    _seed(catalog)
    lex = _lex(catalog)
    good = lex.verify()
    assert good.ok and (good.chunks, good.entries, good.missing) == (3, 3, 0)
    with catalog.engine.begin() as conn:
        conn.execute(text(f"DROP INDEX {PG_INDEX}"))
    bad = lex.verify()
    assert not bad.ok and not bad.integrity_ok and bad.error and PG_INDEX in bad.error
    assert _ids(catalog, "scurvy") == ["a", "b", "c"]  # still correct, only slower


def test_an_old_pg_catalog_gets_its_lexical_column_on_open(pg_url: str) -> None:
    catalog = Catalog.open(pg_url)
    _seed(catalog)
    with catalog.engine.begin() as conn:  # make it a schema 4 catalog: no lexical objects
        conn.execute(text(f"ALTER TABLE chunks DROP COLUMN {PG_COLUMN}"))
        conn.execute(text(f"DROP TEXT SEARCH CONFIGURATION {PG_CONFIG}"))
        conn.execute(
            update(schema.meta).values(value="4").where(schema.meta.c.key == "schema_version")
        )
    catalog.close()
    reopened = Catalog.open(pg_url)
    assert _ids(reopened, "scurvy") == ["a", "b", "c"] and _lex(reopened).verify().ok
    reopened.close()


@pytest.mark.parametrize("query", ["___", "_ __", "1e9999", "a" * 3000, "ß" * 50, "don't"])
def test_odd_questions_return_hits_or_nothing_never_an_error(catalog: Catalog, query: str) -> None:
    _seed(catalog)
    assert _ids(catalog, query) == []
    assert _lex(catalog).search(query, 5, columns=["text"]) == []

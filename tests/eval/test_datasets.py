"""The BEIR loader: layout, graded qrels, splits, answers, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragloop.core.errors import InvalidInputError
from ragloop.eval.datasets import available_splits, load_beir
from tests.eval.beir_fixture import KEYWORD_QRELS, write_beir


def test_loads_corpus_queries_graded_qrels_and_answers(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "kw", qrels={"test": KEYWORD_QRELS, "train": [("q1", "d2", 1)]})
    ds = load_beir(root, "test")
    assert (ds.name, ds.split, len(ds.corpus)) == ("kw", "test", 8)
    assert list(ds.queries) == ["q1", "q2", "q3"]
    assert ds.qrels["q2"] == {"d3": 2, "d2": 1}
    assert ds.relevant("q2") == {"d2", "d3"}
    assert ds.queries["q1"].answers == ("Vitamin C",)
    assert ds.queries["q2"].answers == ("whales and reefs",)
    assert ds.queries["q3"].answers == ()
    assert ds.warnings == []
    assert available_splits(root) == ["test", "train"]
    train = load_beir(root, "train")
    assert list(train.queries) == ["q1"] and train.qrels == {"q1": {"d2": 1}}


def test_title_and_text_are_joined_like_ingest(tmp_path: Path) -> None:
    corpus = [{"_id": "a", "title": "Scurvy", "text": "vitamin C"}, {"_id": "b", "text": "x"}]
    ds = load_beir(write_beir(tmp_path, corpus=corpus, qrels={"test": [("q1", "a", 1)]}))
    assert ds.corpus["a"].embedding_input == "Scurvy\nvitamin C"
    assert ds.corpus["b"].embedding_input == "x"


def test_a_beir_subfolder_is_found_and_named_after_its_parent(tmp_path: Path) -> None:
    write_beir(tmp_path / "financial" / "beir")
    ds = load_beir(tmp_path / "financial")
    assert ds.name == "financial" and ds.path == tmp_path / "financial" / "beir"


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_a_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    root = write_beir(tmp_path / "ds")
    (root / missing).unlink()
    with pytest.raises(InvalidInputError, match=missing.replace("/", "/")) as exc:
        load_beir(root, "test")
    assert "missing" in exc.value.message


def test_an_unknown_split_lists_the_splits_there(tmp_path: Path) -> None:
    root = write_beir(tmp_path)
    with pytest.raises(InvalidInputError, match=r"no split 'dev' \(splits here: test\)"):
        load_beir(root, "dev")


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_beir(tmp_path / "nope")


def test_qrels_without_a_header_are_refused_with_file_and_line(tmp_path: Path) -> None:
    root = write_beir(tmp_path, header="")
    with pytest.raises(InvalidInputError, match=r"qrels/test\.tsv:1: no header line"):
        load_beir(root)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("q1\td1", r"test\.tsv:3: expected 3 tab-separated fields .* got 2"),
        ("q1\td1\thigh", r"test\.tsv:3: score 'high' is not an integer grade"),
        ("q1\td1\t0.5", r"test\.tsv:3: score '0.5' is not an integer grade"),
    ],
)
def test_a_malformed_qrels_line_is_named(tmp_path: Path, line: str, expected: str) -> None:
    root = write_beir(tmp_path, qrels={"test": [("q1", "d1", 1)]})
    path = root / "qrels" / "test.tsv"
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(InvalidInputError, match=expected):
        load_beir(root)


def test_space_separated_qrels_and_float_grades_are_read(tmp_path: Path) -> None:
    root = write_beir(tmp_path)
    (root / "qrels" / "test.tsv").write_text("query-id corpus-id score\nq1 d1 2.0\n")
    assert load_beir(root).qrels == {"q1": {"d1": 2}}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("{not json", r"corpus\.jsonl:9: invalid JSON"),
        ('["a list"]', r"corpus\.jsonl:9: expected a JSON object"),
        ('{"title": "t", "text": "x"}', r"corpus\.jsonl:9: missing _id"),
        (
            '{"_id": "d1", "text": "again"}',
            r"corpus\.jsonl:9: duplicate _id 'd1' \(first on line 1",
        ),
        ('{"_id": "d9", "text": ["x"]}', r"corpus\.jsonl:9: title and text must be strings"),
    ],
)
def test_a_malformed_corpus_line_is_named(tmp_path: Path, record: str, expected: str) -> None:
    root = write_beir(tmp_path)
    with (root / "corpus.jsonl").open("a") as fh:
        fh.write(record + "\n")
    with pytest.raises(InvalidInputError, match=expected):
        load_beir(root)


def test_queries_without_text_are_skipped_with_a_warning(tmp_path: Path) -> None:
    queries = [
        {"_id": "q1", "text": "scurvy"},
        {"_id": "q2", "text": ""},
        {"_id": "q3"},
        {"_id": "q4", "text": " "},  # not in this split: not worth a warning
    ]
    rows = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d3", 1)]
    ds = load_beir(write_beir(tmp_path, queries=queries, qrels={"test": rows}))
    assert list(ds.queries) == ["q1"]
    assert ds.warnings == [
        "queries.jsonl: 2 queries of this split have no text ('q2', 'q3'); they are skipped"
    ]


def test_a_query_text_that_is_not_a_string_is_named(tmp_path: Path) -> None:
    root = write_beir(tmp_path)
    with (root / "queries.jsonl").open("a") as fh:
        fh.write(json.dumps({"_id": "q9", "text": 42}) + "\n")
    with pytest.raises(InvalidInputError, match=r"queries\.jsonl:4: query 'q9' text is not"):
        load_beir(root)


def test_empty_documents_are_kept_with_a_warning(tmp_path: Path) -> None:
    corpus = [{"_id": "d1", "text": "scurvy"}, {"_id": "d2", "title": "", "text": " "}]
    ds = load_beir(write_beir(tmp_path, corpus=corpus, qrels={"test": [("q1", "d1", 1)]}))
    assert set(ds.corpus) == {"d1", "d2"}
    assert ds.warnings == [
        "corpus.jsonl: 1 documents have no title or text ('d2'); they are kept and embedded "
        "as empty text, as in BEIR"
    ]


def test_dangling_ids_are_counted_in_warnings_not_fatal(tmp_path: Path) -> None:
    rows = [*KEYWORD_QRELS, ("q1", "gone1", 1), ("q2", "gone2", 1), ("q2", "gone1", 0)]
    rows += [("ghost", "d1", 1), ("ghost", "d2", 1), ("q4", "d1", 0)]
    queries = [{"_id": f"q{i}", "text": f"query {i}"} for i in range(1, 5)]
    ds = load_beir(write_beir(tmp_path, queries=queries, qrels={"test": rows}))
    assert list(ds.queries) == ["q1", "q2", "q3"]  # ghost unknown, q4 has nothing relevant
    assert "gone1" in ds.qrels["q1"]  # kept: relevant, never retrievable (as BEIR)
    text = "\n".join(ds.warnings)
    assert "2 judgements name 1 query ids not in queries.jsonl ('ghost')" in text
    assert "3 judgements name 2 corpus ids not in corpus.jsonl ('gone1', 'gone2')" in text
    assert "1 queries have no relevant document" in text


def test_a_split_without_any_relevant_judgement_is_refused(tmp_path: Path) -> None:
    root = write_beir(tmp_path, qrels={"test": [("q1", "d1", 0)]})
    with pytest.raises(InvalidInputError, match="no query of this split has a relevant"):
        load_beir(root)

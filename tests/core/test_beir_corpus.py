"""One reader of BEIR corpus records: ingest and the eval datasets agree line by line."""

import json
from pathlib import Path

import pytest

from ragloop.core.beir_corpus import corpus_lines, corpus_record
from ragloop.core.errors import InvalidInputError
from ragloop.eval.datasets import load_corpus
from ragloop.ingest.loaders import LoadedDocument, LoadFailure, load_file


def test_a_record_is_id_title_text_and_metadata() -> None:
    r = corpus_record({"_id": 7, "title": None, "text": "t", "metadata": {"url": "u"}})
    assert (r.id, r.title, r.text, r.metadata) == ("7", "", "t", {"url": "u"})
    assert corpus_record({"id": "x", "text": "t"}).id == "x"


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (["a list"], "expected a JSON object"),
        ({"title": "t", "text": "x"}, "missing _id"),
        ({"_id": " ", "text": "x"}, "missing _id"),
        ({"_id": "a", "text": ["x"]}, "title and text must be strings"),
        ({"_id": "a", "title": 3, "text": "x"}, "title and text must be strings"),
    ],
)
def test_bad_records_are_refused_with_a_reason(obj: object, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        corpus_record(obj)


def test_lines_are_numbered_and_blank_ones_skipped() -> None:
    lines = ['{"_id": "a", "text": "x"}', "", "{oops", '{"_id": "b"}']
    got = [
        (n, r.id if not isinstance(r, InvalidInputError) else r.message)
        for n, r in corpus_lines(lines)
    ]
    assert got == [
        (1, "a"),
        (3, "invalid JSON (Expecting property name enclosed in double quotes)"),
        (4, "b"),
    ]


def test_ingest_and_eval_read_the_same_corpus_the_same_way(tmp_path: Path) -> None:
    records = [
        {"_id": "a", "title": "Scurvy", "text": "Vitamin C.", "metadata": {"k": 1}},
        {"id": "b", "title": None, "text": "Whales sing."},
        {"_id": 3, "text": "Numbers are ids too."},
    ]
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    docs = [d for d in load_file(path, 1 << 20) if isinstance(d, LoadedDocument)]
    corpus = load_corpus(path)
    assert [(d.id, d.title, d.text) for d in docs] == [
        (d.id, d.title, d.text) for d in corpus.values()
    ]
    assert docs[0].meta == {"k": 1}


def test_a_bad_line_fails_alone_in_ingest_and_refuses_the_dataset_in_eval(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "a", "text": "fine"}\n{"_id": "b", "text": 5}\n')
    out = list(load_file(path, 1 << 20))
    failure = out[1]
    assert isinstance(failure, LoadFailure)
    assert (failure.name, failure.reason) == ("corpus.jsonl:2", "title and text must be strings")
    with pytest.raises(InvalidInputError, match=r"corpus\.jsonl:2: title and text must be strings"):
        load_corpus(path)

"""Answer mode: questions with reference answers through the real answer path (keyword fake)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragloop.cli.main import app
from ragloop.core import runtime as runtime_module
from ragloop.core.errors import InvalidInputError
from ragloop.core.generators.base import NO_ANSWER_MARKER, Context, Generator, Turn
from ragloop.core.runtime import Runtime, open_runtime
from ragloop.core.settings import Settings
from ragloop.core.storage.querylog import QueryLog
from ragloop.eval.answer_mode import contains_reference, evaluate_answers, strip_citations
from ragloop.eval.datasets import load_beir
from ragloop.ingest.pipeline import Ingestor
from tests.eval.beir_fixture import write_beir
from tests.fakes import KeywordEmbedder, fake_registry

# One chunk per document; each question's words (keyword fake) point at exactly one document.
CORPUS = [
    {
        "_id": "d1",
        "title": "Scurvy",
        "text": "Sailors on long voyages got scurvy. Scurvy is caused by a lack of vitamin C. "
        "Citrus fruit such as lemons prevents it.",
    },
    {
        "_id": "d2",
        "title": "Whales",
        "text": "The blue whale lives in every ocean. A whale breathes air through a blowhole.",
    },
    {
        "_id": "d3",
        "title": "Reefs",
        "text": "Coral reefs grow in warm shallow ocean water. A reef is built by coral animals.",
    },
    {
        "_id": "d4",
        "title": "Volcanoes",
        "text": "A volcano erupts when magma rises. Lava is magma that reaches the surface.",
    },
]
QUERIES = [
    {
        "_id": "q1",
        "text": "What vitamin prevents scurvy?",
        "metadata": {"answers": ["vitamin C", "C"]},
    },
    {
        "_id": "q2",
        "text": "Where does the blue whale live?",
        "metadata": {"answer": "in every ocean"},
    },
    {
        "_id": "q3",
        "text": "What is lava?",
        "metadata": {"answers": ["magma that reaches the surface"]},
    },
    {"_id": "q4", "text": "zebra stripes", "metadata": {"answers": ["camouflage"]}},
    {"_id": "q5", "text": "coral reef", "metadata": {}},  # no reference answer: skipped
]
QRELS = {
    "test": [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d4", 1), ("q4", "d3", 1), ("q5", "d3", 1)]
}


class ScriptedGenerator(Generator):
    """Replies with a fixed text per question."""

    name = "scripted"

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies

    def stream(
        self, question: str, contexts: Sequence[Context], history: Sequence[Turn] = ()
    ) -> Iterator[str]:
        yield self.replies[question]


@pytest.fixture
def ingested(tmp_path: Path, fake_runtime: Runtime) -> Path:
    root = write_beir(tmp_path / "qa", CORPUS, QUERIES, QRELS)
    Ingestor(fake_runtime).ingest([root / "corpus.jsonl"])
    return root


def test_the_extractive_generator_scored_by_hand(ingested: Path, fake_runtime: Runtime) -> None:
    run = evaluate_answers(fake_runtime, load_beir(ingested), k=2)  # auto: extractive here
    r = run.report
    assert (r.model, r.n_queries, r.skipped_without_answers) == ("extractive", 4, 1)
    answers = [row["answer"] for row in r.per_query]
    assert answers[1] == "The blue whale lives in every ocean [1]."
    assert answers[2] == "Lava is magma that reaches the surface [1]."
    # Whole sentences: no exact match. F1 per question: q1 "vitamin c" against 15 answer tokens
    # (P 2/15, R 1) = 4/17; q2 3 of 6 tokens (2/3); q3 4 of 6 (0.8); q4 abstains (0).
    assert r.exact_match == 0.0
    assert r.f1 == pytest.approx((4 / 17 + 2 / 3 + 0.8 + 0.0) / 4)
    assert (r.citation_precision, r.n_with_citations) == (1.0, 3)
    info = run.info
    assert info["no_answer_share"] == 0.25 and info["n_without_citations"] == 1
    assert info["contains_reference"] == 0.75  # the right span is inside q1-q3's sentences
    assert info["generators_used"] == {"extractive": 4} and info["k"] == 2
    # "zebra stripes": weak cosine, no BM25 match at all (the sides share nothing), abstained.
    assert r.per_query[3]["miss_reasons"] == ["low_score", "no_overlap", "no_answer"]
    # Evaluation questions stay out of the query log unless asked for.
    assert QueryLog(fake_runtime.catalog.engine).counts()["queries"] == 0
    evaluate_answers(fake_runtime, load_beir(ingested), k=2, log_queries=True)
    assert QueryLog(fake_runtime.catalog.engine).counts()["queries"] == 4


def test_citations_are_stripped_and_wrong_citations_count(
    ingested: Path, fake_runtime: Runtime
) -> None:
    scripted = ScriptedGenerator(
        {
            "What vitamin prevents scurvy?": "Vitamin C [1][2].",  # source 2 is not d1
            "Where does the blue whale live?": "It lives in every ocean [1, 2]",
            "What is lava?": "magma [2]",  # source 1 is d4, source 2 is not
            "zebra stripes": f"{NO_ANSWER_MARKER}: nothing here",
        }
    )
    run = evaluate_answers(fake_runtime, load_beir(ingested), scripted, k=2)
    r = run.report
    assert [row["exact_match"] for row in r.per_query] == [1.0, 0.0, 0.0, 0.0]
    # q2: "it lives in every ocean" vs "in every ocean": P 3/5, R 1 -> 0.75; q3: P 1, R 1/4.
    assert r.f1 == pytest.approx((1.0 + 0.75 + 0.4 + 0.0) / 4)
    assert [row["citation_precision"] for row in r.per_query] == [0.5, 0.5, 0.0, None]
    assert r.citation_precision == pytest.approx(1 / 3)
    assert run.info["citation_precision_pooled"] == pytest.approx(2 / 5)
    assert run.info["contains_reference"] == 0.5  # q3 "magma" is only part of its reference
    assert run.info["no_answer_share"] == 0.25 and run.info["generators_used"] == {"scripted": 4}
    assert r.per_query[0]["cited_documents"][0] == "d1"


def test_a_limit_draws_a_seeded_sample_in_file_order(ingested: Path, fake_runtime: Runtime) -> None:
    ds = load_beir(ingested)
    first = evaluate_answers(fake_runtime, ds, k=2, limit=2, seed=7)
    again = evaluate_answers(fake_runtime, ds, k=2, limit=2, seed=7)
    ids = [row["query_id"] for row in first.report.per_query]
    assert ids == [row["query_id"] for row in again.report.per_query] == sorted(ids)
    assert len(ids) == 2 and first.info["seed"] == 7 and first.info["n_answerable"] == 4
    seeds = {
        tuple(
            row["query_id"]
            for row in evaluate_answers(fake_runtime, ds, k=2, limit=2, seed=s).report.per_query
        )
        for s in range(8)
    }
    assert len(seeds) > 1  # not always the first two


def test_sets_without_answers_and_empty_data_dirs_are_refused(
    tmp_path: Path, fake_runtime: Runtime
) -> None:
    root = write_beir(tmp_path / "qa", CORPUS, QUERIES, QRELS)
    with pytest.raises(InvalidInputError, match="nothing is ingested"):
        evaluate_answers(fake_runtime, load_beir(root))
    plain = write_beir(tmp_path / "plain", CORPUS, [QUERIES[4]], QRELS)
    with pytest.raises(InvalidInputError, match="has no reference answers"):
        evaluate_answers(fake_runtime, load_beir(plain))


def test_strip_citations_and_contains_reference() -> None:
    assert strip_citations("Paris [1]. It is big [2, 3]") == "Paris. It is big"
    assert contains_reference("It is in the 10th century, roughly.", ["10th Century"])
    assert not contains_reference("Vitamin Cat", ["vitamin c"])  # whole words only
    assert not contains_reference("anything", ["the"])  # a reference that normalises to ""


def test_cli_answers_writes_json_and_markdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder: KeywordEmbedder
) -> None:
    registry = fake_registry(fake_embedder)
    monkeypatch.setattr(runtime_module, "default_registry", lambda: registry)
    monkeypatch.setenv("RAGLOOP_EMBEDDER", "fake-keyword")
    root = write_beir(tmp_path / "qa", CORPUS, QUERIES, QRELS)
    data, out = tmp_path / "data", tmp_path / "out"
    rt = open_runtime(
        Settings(data_dir=data, embedder="fake-keyword", chunk_tokens=24, chunk_overlap=4)
    )
    Ingestor(rt).ingest([root / "corpus.jsonl"])
    rt.close()
    common = ["eval", "--dataset", str(root), "--data-dir", str(data)]
    res = CliRunner().invoke(app, [*common, "--answers", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert (report["mode"], report["model"], report["n_queries"]) == ("answers", "extractive", 4)
    assert report["exact_match"] == 0.0 and report["citation_precision"] == 1.0
    assert set(report["files"]) == {"json", "markdown", "per_query"}
    assert len((out / "answers.jsonl").read_text().splitlines()) == 4
    assert "| extractive | 4 | 0.0000 |" in (out / "report.md").read_text()
    md = CliRunner().invoke(app, [*common, "--answers", "--limit", "2", "--out", str(out)])
    assert md.exit_code == 0 and "| extractive | 2 | " in md.stdout
    bad = CliRunner().invoke(app, [*common, "--limit", "3"])
    assert bad.exit_code == 1 and "--limit applies to --answers only" in bad.stderr
    empty = ["eval", "--dataset", str(root), "--data-dir", str(tmp_path / "none"), "--answers"]
    res = CliRunner().invoke(app, empty)
    assert res.exit_code == 1 and "--answers needs an ingested data dir" in res.stderr

"""Service mode: queries through the live retriever over an ingested BEIR corpus (fake model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragloop.core.errors import InvalidInputError, NotFoundError
from ragloop.core.runtime import Runtime
from ragloop.eval.datasets import load_beir
from ragloop.eval.evaluators import ServiceModeEvaluator
from ragloop.eval.model_mode import evaluate_model
from ragloop.eval.service_mode import evaluate_service
from ragloop.ingest.pipeline import Ingestor
from tests.eval.beir_fixture import KEYWORD_CORPUS, write_beir
from tests.fakes import KeywordEmbedder

# No score ties, so Chroma's order and exact search agree on every rank.
UNTIED = {"test": [("q1", "d1", 1), ("q2", "d3", 2), ("q2", "d2", 1)]}
LONG = {
    "_id": "long",
    "title": "",
    "text": " ".join(["apple banana"] * 15) + "\n\n" + " ".join(["whale"] * 12),
}


def test_single_chunk_documents_score_as_in_model_mode(
    tmp_path: Path, fake_runtime: Runtime, fake_embedder: KeywordEmbedder
) -> None:
    root = write_beir(tmp_path / "kw", qrels=UNTIED)
    Ingestor(fake_runtime).ingest([root / "corpus.jsonl"])
    ds = load_beir(root)
    dim = fake_embedder.dimension
    # Dense retrieval is what model mode measures (hybrid adds BM25: see the modes test).
    evaluator = ServiceModeEvaluator(ds, fake_runtime, retrieval="dense", dims=[dim, 12])
    service = evaluator.evaluate("active")
    model = evaluate_model(fake_embedder, ds, dims=[dim, 12])
    assert service.mode == "service" and service.model == "active"
    for d in (dim, 12):
        assert service.by_dim[d] == pytest.approx(model.by_dim[d], abs=1e-6)
    assert service.info["index_by_dim"] == {
        str(dim): "live retriever (Chroma HNSW)",
        "12": "exact, re-embedded chunks",
    }
    assert service.info["documents_per_query"]["min"] == 8
    assert service.n_documents == 8


def test_a_document_is_ranked_once_by_its_best_chunk(tmp_path: Path, fake_runtime: Runtime) -> None:
    corpus = [*KEYWORD_CORPUS, LONG]
    queries = [{"_id": "w", "text": "whale"}]
    root = write_beir(tmp_path / "long", corpus, queries, {"test": [("w", "long", 1)]})
    Ingestor(fake_runtime).ingest([root / "corpus.jsonl"])
    assert fake_runtime.catalog.get_document("long").n_chunks > 1  # type: ignore[union-attr]
    report = evaluate_service(fake_runtime, load_beir(root), ks=(1, 10))
    # The all-"whale" chunk scores 1.0 and beats d2 ("ocean whale", 0.71).
    assert report.metrics["ndcg@1"] == 1.0
    assert report.info["documents_per_query"]["min"] == 9  # nine documents, each once


def test_nothing_ingested_is_refused(tmp_path: Path, fake_runtime: Runtime) -> None:
    ds = load_beir(write_beir(tmp_path / "kw"))
    with pytest.raises(InvalidInputError, match="nothing is ingested"):
        evaluate_service(fake_runtime, ds)


def test_a_corpus_that_is_not_the_ingested_one_is_refused(
    tmp_path: Path, fake_runtime: Runtime
) -> None:
    Ingestor(fake_runtime).ingest([write_beir(tmp_path / "kw") / "corpus.jsonl"])
    other = [{"_id": "zz", "text": "whale"}]
    ds = load_beir(write_beir(tmp_path / "other", other, qrels={"test": [("q1", "zz", 1)]}))
    with pytest.raises(InvalidInputError, match="none of the 1 relevant documents"):
        evaluate_service(fake_runtime, ds)


def test_a_stored_version_can_be_named_and_an_unknown_one_is_not_found(
    tmp_path: Path, fake_runtime: Runtime
) -> None:
    root = write_beir(tmp_path / "kw", qrels=UNTIED)
    Ingestor(fake_runtime).ingest([root / "corpus.jsonl"])
    ds = load_beir(root)
    assert evaluate_service(fake_runtime, ds, version="base").metrics == pytest.approx(
        evaluate_service(fake_runtime, ds).metrics
    )
    with pytest.raises(NotFoundError, match="unknown model version 'v9'"):
        evaluate_service(fake_runtime, ds, version="v9")


def test_dense_lexical_and_hybrid_side_by_side(tmp_path: Path, fake_runtime: Runtime) -> None:
    from ragloop.eval.report import EvalRun, write_outputs

    # "kraken" is no keyword of the fake embedder: only BM25 can find d-kraken for q1 (every
    # cosine is 0, a tie in any order); q2 is found first by both sides.
    corpus = [
        {"_id": "d-kraken", "title": "", "text": "the kraken and a whale in the ocean"},
        {"_id": "d-whale", "title": "", "text": "whale whale coral"},
        {"_id": "d-bread", "title": "", "text": "banana bread flour"},
    ]
    queries = [{"_id": "q1", "text": "kraken"}, {"_id": "q2", "text": "whale coral"}]
    qrels = {"test": [("q1", "d-kraken", 1), ("q2", "d-whale", 1)]}
    root = write_beir(tmp_path / "kr", corpus, queries, qrels)
    Ingestor(fake_runtime).ingest([root / "corpus.jsonl"])
    evaluator = ServiceModeEvaluator(load_beir(root), fake_runtime, ks=(1, 10))
    reports = [evaluator.evaluate_mode("active", m) for m in ("dense", "lexical", "hybrid")]
    assert [r.retrieval for r in reports] == ["dense", "lexical", "hybrid"]
    assert reports[1].metrics["ndcg@1"] == reports[2].metrics["ndcg@1"] == 1.0
    assert reports[0].primary <= reports[2].primary
    assert reports[2].info["fusion"] == {
        "method": "weighted",
        "rrf_k": 60,
        "dense_weight": 0.5,
        "depth": 50,
    }
    run = EvalRun("kr", str(root), "test", "service", reports)
    md = run.to_markdown()
    assert "| model | dense | lexical | hybrid |" in md
    assert f"| active (fake-keyword) | {reports[0].primary:.4f} | 1.0000 | 1.0000 |" in md
    files = write_outputs(run, tmp_path / "out")
    assert Path(files["plot_retrieval"]).stat().st_size > 0

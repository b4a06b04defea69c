"""Model mode on the keyword fake: exact, predictable rankings and the evaluator interface."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ragloop.core.errors import InvalidInputError, ModelUnavailableError
from ragloop.core.runtime import Runtime
from ragloop.core.settings import Settings
from ragloop.eval.datasets import load_beir
from ragloop.eval.evaluators import ModelModeEvaluator, ModelSource
from ragloop.eval.model_mode import evaluate_model
from tests.eval.beir_fixture import write_beir
from tests.fakes import KeywordEmbedder, fake_registry

LOG3 = math.log2(3)


def test_scores_match_the_rankings_worked_out_by_hand(
    tmp_path: Path, fake_embedder: KeywordEmbedder
) -> None:
    ds = load_beir(write_beir(tmp_path / "kw"))
    report = evaluate_model(fake_embedder, ds, batch_size=3)
    m = report.metrics
    # q1 finds d1 first. q2 ranks d2 (cos 0.71) above d3 (0.58) but d3 has grade 2.
    # q3 ties d4 and d8 (cos 0.41 each); ties go to the lower id, so the relevant d8 is 2nd.
    ndcg_q2 = (1 + 2 / LOG3) / (2 + 1 / LOG3)
    assert m["ndcg@10"] == pytest.approx((1 + ndcg_q2 + 1 / LOG3) / 3)
    assert m["mrr@10"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["recall@1"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["accuracy@1"] == pytest.approx(2 / 3)
    assert m["recall@3"] == m["accuracy@3"] == 1.0
    assert m["precision@3"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 3) / 3)
    assert (report.n_queries, report.n_documents, report.mode) == (3, 8, "model")
    assert report.primary == m["ndcg@10"] and set(report.by_dim) == {fake_embedder.dimension}


def test_the_corpus_is_embedded_once_for_all_dimensions(
    tmp_path: Path, fake_embedder: KeywordEmbedder
) -> None:
    ds = load_beir(write_beir(tmp_path / "kw"))
    report = evaluate_model(fake_embedder, ds, dims=[4, 24, 12], batch_size=100)
    assert sorted(report.by_dim) == [4, 12, 24]
    assert report.top_dim == 24
    assert fake_embedder.calls == [8, 3]  # one corpus batch, one query batch
    # The first four vocabulary words are scurvy, vitamin, citrus, sailors: only q1 survives.
    assert report.by_dim[4]["accuracy@1"] < report.by_dim[24]["accuracy@1"]
    with pytest.raises(InvalidInputError, match="outside"):
        evaluate_model(fake_embedder, ds, dims=[fake_embedder.dimension + 1])


def test_length_sorted_batches_come_back_in_input_order(fake_embedder: KeywordEmbedder) -> None:
    texts = ["whale ocean coral", "lava", "bread flour", "scurvy"]
    seen: list[tuple[str, int, int]] = []
    got = fake_embedder.embed_many(
        texts, is_query=False, batch_size=3, progress=lambda *a: seen.append(a)
    )
    assert (got == fake_embedder.embed(texts)).all()
    assert seen == [("embedding", 0, 4), ("embedding", 3, 4), ("embedding", 4, 4)]


def test_evaluator_interface_compares_reports_on_the_primary_metric(
    tmp_path: Path, fake_embedder: KeywordEmbedder
) -> None:
    ds = load_beir(write_beir(tmp_path / "kw"))
    narrow = KeywordEmbedder(["scurvy", "vitamin"], model_id="narrow")
    models = {"full": fake_embedder, "narrow": narrow}
    evaluator = ModelModeEvaluator(ds, models.__getitem__)
    assert (evaluator.primary_metric, evaluator.greater_is_better) == ("ndcg@10", True)
    good, bad = evaluator.evaluate("full"), evaluator.evaluate("narrow")
    assert good.model == "full" and bad.model_id == "narrow"
    assert evaluator.is_better(good, bad) and not evaluator.is_better(bad, good)
    assert not evaluator.is_better(good, bad, margin=1.0)


def test_model_source_resolves_active_and_versions_from_the_catalog_only(
    fake_runtime: Runtime, fake_settings: Settings, fake_embedder: KeywordEmbedder
) -> None:
    fake_runtime.active_index()  # registers the base version "base" -> fake-keyword
    source = ModelSource(fake_settings, registry=fake_registry(fake_embedder))
    try:
        assert source.model_ref("active") == source.model_ref("base") == "fake-keyword"
        assert source.load("active") is source.load("base") is fake_embedder
        assert source.model_ref("some/dir") == "some/dir"
        with pytest.raises(ModelUnavailableError, match=r"known: base\), and unknown embedder"):
            source.load("nope")
    finally:
        source.close()


def test_without_a_catalog_active_is_the_configured_embedder(
    tmp_path: Path, fake_embedder: KeywordEmbedder
) -> None:
    settings = Settings(data_dir=tmp_path / "none", embedder="fake-keyword")
    source = ModelSource(settings, registry=fake_registry(fake_embedder))
    assert source.load("active") is fake_embedder
    assert not (tmp_path / "none").exists()

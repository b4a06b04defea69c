"""IR metrics checked by hand on small cases and against pytrec_eval (trec_eval) on random runs."""

from __future__ import annotations

import math
import random

import pytest
import pytrec_eval

from ragloop.eval.metrics import (
    accuracy_at_k,
    evaluate_run,
    map_at_k,
    metric_names,
    mrr_at_k,
    ndcg_at_k,
    per_query,
    precision_at_k,
    recall_at_k,
)

RANKED = ["a", "b", "c", "d", "e"]
# "x" is relevant but never retrieved; "z" is judged and not relevant; "a" is unjudged.
GRADES = {"b": 2, "d": 1, "x": 3, "z": 0}
LOG3 = math.log2(3)


def test_ndcg_uses_linear_graded_gains_and_the_ideal_over_all_judgements() -> None:
    ideal3 = 3 + 2 / LOG3 + 1 / 2  # grades 3, 2, 1 at ranks 1, 2, 3
    assert ndcg_at_k(RANKED, GRADES, 3) == pytest.approx((2 / LOG3) / ideal3)
    assert ndcg_at_k(RANKED, GRADES, 5) == pytest.approx((2 / LOG3 + 1 / math.log2(5)) / ideal3)
    assert ndcg_at_k(RANKED, GRADES, 1) == 0.0  # "a" is unjudged
    assert ndcg_at_k(["x", "b", "d"], GRADES, 3) == pytest.approx(1.0)
    assert ndcg_at_k(["b", "x", "d"], GRADES, 3) < 1.0  # order matters with grades


def test_mrr_recall_precision_map_accuracy_by_hand() -> None:
    assert [mrr_at_k(RANKED, GRADES, k) for k in (1, 2, 10)] == [0.0, 0.5, 0.5]
    assert recall_at_k(RANKED, GRADES, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, GRADES, 5) == pytest.approx(2 / 3)
    assert precision_at_k(RANKED, GRADES, 2) == pytest.approx(1 / 2)
    assert precision_at_k(RANKED, GRADES, 5) == pytest.approx(2 / 5)
    assert precision_at_k(RANKED, GRADES, 10) == pytest.approx(2 / 10)  # short ranking: /k
    assert map_at_k(RANKED, GRADES, 2) == pytest.approx((1 / 2) / 3)
    assert map_at_k(RANKED, GRADES, 5) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert [accuracy_at_k(RANKED, GRADES, k) for k in (1, 2)] == [0.0, 1.0]


def test_grade_zero_is_not_relevant_and_repeats_count_once() -> None:
    assert mrr_at_k(["z", "d"], GRADES, 10) == 0.5
    assert precision_at_k(["b", "b", "d"], GRADES, 2) == 1.0  # the repeat of "b" is dropped
    assert recall_at_k(["b", "b"], GRADES, 2) == pytest.approx(1 / 3)


def test_a_query_without_relevant_documents_is_not_scored() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"a": 0}}
    assert set(per_query({"q1": ["a"], "q2": ["a"]}, qrels)) == {"q1"}
    assert evaluate_run({"q1": ["a"]}, qrels, ks=(1,))["ndcg@1"] == 1.0
    assert evaluate_run({}, {"q": {"a": 0}}, ks=(1,)) == dict.fromkeys(metric_names((1,)), 0.0)


def test_a_scored_query_missing_from_the_run_counts_as_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    scores = evaluate_run({"q1": ["a"]}, qrels, ks=(1,))
    assert scores["ndcg@1"] == 0.5 and scores["recall@1"] == 0.5


def test_k_must_be_positive_and_metrics_known() -> None:
    with pytest.raises(ValueError):
        ndcg_at_k(RANKED, GRADES, 0)
    with pytest.raises(ValueError, match="unknown metrics"):
        per_query({}, {}, metrics=("bleu",))


def test_names_are_metric_at_k() -> None:
    assert metric_names((1, 10), ("ndcg", "mrr")) == ["ndcg@1", "ndcg@10", "mrr@1", "mrr@10"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_pytrec_eval_on_random_graded_runs(seed: int) -> None:
    rng = random.Random(seed)
    docs = [f"doc{i}" for i in range(300)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(60):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 30))
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        retrieved = rng.sample(docs, rng.randint(0, 100))
        # Distinct scores, so trec_eval's tie order never matters.
        run[qid] = {d: 1.0 - i / 1000 for i, d in enumerate(retrieved)}
    ks = (1, 3, 5, 10, 100)
    measures = {f"{m}.{','.join(map(str, ks))}" for m in ("ndcg_cut", "map_cut", "recall", "P")}
    measures |= {"recip_rank", f"success.{','.join(map(str, ks))}"}
    theirs = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    ours = per_query({q: list(r) for q, r in run.items()}, qrels, ks)
    assert ours, "every seed scores some queries"
    names = {"ndcg": "ndcg_cut_{k}", "map": "map_cut_{k}", "recall": "recall_{k}"}
    names |= {"precision": "P_{k}", "accuracy": "success_{k}"}
    for qid, scores in ours.items():
        for metric, pattern in names.items():
            for k in ks:
                expected = theirs[qid][pattern.format(k=k)]
                assert scores[f"{metric}@{k}"] == pytest.approx(expected, abs=1e-9), (qid, metric)
        # trec_eval's reciprocal rank has no cut-off; runs here are at most 100 long.
        assert scores["mrr@100"] == pytest.approx(theirs[qid]["recip_rank"], abs=1e-9)

"""Answer quality: SQuAD exact match and F1, citation precision, and the evaluator loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragloop.eval.answers import (
    AnswerEvaluator,
    citation_precision,
    exact_match,
    normalize_answer,
    token_f1,
)
from ragloop.eval.datasets import load_beir
from tests.eval.beir_fixture import write_beir


def test_normalisation_follows_the_squad_script() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a day") == "apple day"
    assert normalize_answer("Theory of the Atom") == "theory of atom"  # "the" only as a word


def test_exact_match_takes_the_best_reference() -> None:
    assert exact_match("the 10th century.", ["10th century", "in the 10th"]) == 1.0
    assert exact_match("10th and 11th centuries", ["10th century"]) == 0.0
    assert exact_match("anything", []) == 0.0


def test_token_f1_by_hand() -> None:
    # prediction: in, 10th, century (3 tokens); reference: 10th, and, 11th, century (4); 2 shared.
    assert token_f1("in the 10th century", ["10th and 11th century"]) == pytest.approx(
        2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4)
    )
    assert token_f1("France", ["France", "in France"]) == 1.0
    assert token_f1("Germany", ["France"]) == 0.0
    assert token_f1("", [""]) == 1.0 and token_f1("the", ["France"]) == 0.0
    assert token_f1("x b b", ["b b c"]) == pytest.approx(2 / 3)  # repeated tokens count


def test_citation_precision() -> None:
    assert citation_precision(["d1", "d2", "d1", "d9"], {"d1", "d2"}) == 0.75
    assert citation_precision([], {"d1"}) is None
    assert citation_precision(["d9"], set()) == 0.0


def test_answer_evaluator_scores_answerable_queries(tmp_path: Path) -> None:
    ds = load_beir(write_beir(tmp_path / "kw"))  # q1 and q2 have answers, q3 has none
    replies = {
        "scurvy vitamin": ("vitamin C", ["d1", "d4"]),
        "ocean": ("whales", []),
    }
    asked: list[str] = []

    def answer(question: str) -> tuple[str, list[str]]:
        asked.append(question)
        return replies[question]

    report = AnswerEvaluator(ds, answer).evaluate("extractive")
    assert asked == ["scurvy vitamin", "ocean"]
    assert (report.n_queries, report.skipped_without_answers) == (2, 1)
    assert report.exact_match == 0.5
    # q2: "whales" against "whales and reefs" (articles and "and" kept): P 1, R 1/3.
    assert report.f1 == pytest.approx((1.0 + 2 * (1 / 3) / (1 + 1 / 3)) / 2)
    assert report.citation_precision == 0.5 and report.n_with_citations == 1
    assert report.to_dict()["model"] == "extractive"
    limited = AnswerEvaluator(ds, answer, limit=1).evaluate()
    assert limited.n_queries == 1 and limited.citation_precision == 0.5

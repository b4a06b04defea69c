"""The extractive generator: predictable, cited, honest about misses, never failing."""

from __future__ import annotations

import time

import pytest

from ragloop.core.generators.base import NO_ANSWER_MARKER, NO_ANSWER_TEXT, Context
from ragloop.core.generators.extractive import (
    ExtractiveGenerator,
    content_terms,
    split_sentences,
    stem,
)
from tests.core.generators.wire import CONTEXTS

GEN = ExtractiveGenerator()


def ctx(n: int, text: str, score: float = 0.5, title: str = "") -> Context:
    return Context(n, f"c{n}", f"d{n}", title, f"doc{n}.md", text, score)


def test_inflections_meet_after_stemming() -> None:
    assert len({stem(w) for w in ("cause", "causes", "caused", "causing")}) == 1
    assert stem("vitamins") == stem("vitamin")
    assert stem("deficiencies") == stem("deficiency")
    assert stem("stopped") == stem("stop")
    assert stem("C") == "C" and stem("2024") == "2024"
    assert content_terms("What causes the scurvy?") == ["caus", "scurvy"]


def test_sentences_split_on_punctuation_paragraphs_and_list_items() -> None:
    text = (
        "# Scurvy\nScurvy is caused by a lack of vitamin C. Sailors, e.g. in the\n"
        "navy, often had it.\n\n- Citrus fruit prevents scurvy.\n- Too short\n"
    )
    assert split_sentences(text) == [
        "Scurvy is caused by a lack of vitamin C.",
        "Sailors, e.g. in the navy, often had it.",
        "Citrus fruit prevents scurvy.",
    ]


def test_very_long_unpunctuated_text_is_windowed() -> None:
    pieces = split_sentences(" ".join(f"word{i}" for i in range(200)))
    assert len(pieces) > 3
    assert all(len(p.split()) <= 61 for p in pieces)


def test_best_sentence_is_cited_with_its_context_number() -> None:
    answer = GEN.generate("What causes scurvy?", CONTEXTS)
    assert answer.text == "Scurvy is a disease caused by a lack of vitamin C [1]."
    assert answer.citations == [1]
    assert (answer.generator, answer.model, answer.no_answer) == ("extractive", None, False)


def test_picks_the_sentence_that_covers_the_question() -> None:
    answer = GEN.generate("How did sailors prevent scurvy?", CONTEXTS)
    assert answer.text == "The British navy gave its sailors lemon juice to prevent scurvy [2]."


def test_several_sentences_in_reading_order_each_cited() -> None:
    answer = GEN.generate("Which foods contain vitamin C?", CONTEXTS)
    assert answer.text == (
        "Scurvy is a disease caused by a lack of vitamin C [1]. "
        "Citrus fruits such as oranges and lemons are rich in vitamin C [2]."
    )
    assert answer.citations == [1, 2]


def test_citation_numbers_follow_context_n_not_list_position() -> None:
    contexts = [ctx(5, "Whales are the largest animals on earth."), ctx(2, "Lava is hot.")]
    answer = GEN.generate("How large are whales?", contexts)
    assert answer.text == "Whales are the largest animals on earth [5]."
    assert answer.citations == [5]


def test_retrieval_score_breaks_ties() -> None:
    low = ctx(1, "Magma rises through the crust of the earth.", score=0.2)
    high = ctx(2, "Magma rises from deep inside the earth's mantle.", score=0.9)
    gen = ExtractiveGenerator(max_sentences=1)
    assert gen.generate("Where does magma rise?", [low, high]).citations == [2]


def test_title_words_help_but_do_not_make_a_match_alone() -> None:
    contexts = [
        ctx(1, "It is treated with a daily dose of vitamin C.", title="Scurvy"),
        ctx(2, "Vitamin C dose guidance for adults is printed on the label."),
    ]
    gen = ExtractiveGenerator(max_sentences=1)
    assert gen.generate("scurvy vitamin dose", contexts).citations == [1]
    assert gen.generate("What is scurvy?", contexts[:1]).no_answer is True


def test_near_duplicate_sentences_are_not_repeated() -> None:
    text = "Scurvy is caused by a lack of vitamin C."
    answer = GEN.generate("What causes scurvy?", [ctx(1, text), ctx(2, text)])
    assert answer.text == "Scurvy is caused by a lack of vitamin C [1]."


def test_no_overlap_is_an_abstention_with_a_plain_explanation() -> None:
    deltas = list(GEN.stream("Who painted the Mona Lisa?", CONTEXTS))
    assert deltas == [
        f'{NO_ANSWER_MARKER} I could not find "painted", "mona" or "lisa" in the documents.'
    ]
    answer = GEN.generate("Who painted the Mona Lisa?", CONTEXTS)
    assert answer.no_answer is True
    assert answer.text.startswith(NO_ANSWER_TEXT)
    assert answer.citations == []


@pytest.mark.parametrize("question", ["", "   ", "what is it?", "?!"])
def test_questions_without_content_words_abstain(question: str) -> None:
    answer = GEN.generate(question, CONTEXTS)
    assert answer.no_answer is True


def test_empty_or_blank_contexts_never_raise() -> None:
    assert GEN.generate("What causes scurvy?", []).no_answer is True
    assert "any documents" in GEN.generate("What causes scurvy?", []).text
    blank = [ctx(1, ""), ctx(2, "   \n\n"), ctx(3, "#")]
    assert GEN.generate("What causes scurvy?", blank).no_answer is True


def test_streams_one_delta_per_sentence_and_is_deterministic() -> None:
    deltas = list(GEN.stream("Which foods contain vitamin C?", CONTEXTS))
    assert len(deltas) == 2 and deltas[1].startswith(" ")
    assert list(GEN.stream("Which foods contain vitamin C?", CONTEXTS)) == deltas


def test_fast_enough_for_the_hot_path() -> None:
    words = "scurvy vitamin citrus sailors ocean whale coral reef volcano lava magma".split()
    text = ". ".join(" ".join(words[(i + j) % len(words)] for j in range(12)) for i in range(40))
    contexts = [ctx(n, text, 1.0 / n) for n in range(1, 11)]
    start = time.perf_counter()
    for _ in range(10):
        GEN.generate("what do sailors know about coral reefs and volcano lava?", contexts)
    assert (time.perf_counter() - start) / 10 < 0.05

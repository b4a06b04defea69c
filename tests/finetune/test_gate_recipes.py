"""The gate's recipes: tuning picks the recipe known to be better, and the gate compares the
current model with its stored recipe against the candidate with its tuned one."""

from dataclasses import replace

import pytest

from ragloop.core.fusion import FusionRecipe
from ragloop.finetune.scoring import (
    MIN_RECIPE_QUESTIONS,
    Rankings,
    compare,
    recipe_grid,
    recipe_label,
    score,
    tune,
)

N = 20
RRF = FusionRecipe(method="rrf")


def _rankings(dense_right: bool, lexical_right: bool) -> Rankings:
    """Question i's gold document is ``g{i}`` (chunk ``c{i}``). A side that is right ranks it
    first and a noise chunk ``n{i}`` second; a wrong side returns only the noise chunk."""
    doc_of = {f"c{i}": f"g{i}" for i in range(N)} | {f"n{i}": f"x{i}" for i in range(N)}
    dense = [
        [(f"c{i}", 0.9), (f"n{i}", 0.5)] if dense_right else [(f"n{i}", 0.9)] for i in range(N)
    ]
    lexical = [
        [(f"c{i}", 12.0), (f"n{i}", 6.0)] if lexical_right else [(f"n{i}", 12.0)] for i in range(N)
    ]
    return Rankings(dense, lexical, doc_of, [[f"g{i}"] for i in range(N)])


def test_grid_starts_with_the_current_recipe_and_holds_dense_weighted_and_rrf() -> None:
    current = FusionRecipe(method="weighted", dense_weight=0.6, depth=40)
    grid = recipe_grid(current)
    assert grid[0] == current and all(r.depth == 40 for r in grid)
    labels = [recipe_label(r) for r in grid]
    assert labels == [
        "weighted:0.6",
        "dense",
        "weighted:0.85",
        "weighted:0.7",
        "weighted:0.5",
        "weighted:0.3",
        "rrf:60",
    ]


def test_tuning_picks_dense_when_only_the_dense_side_is_right() -> None:
    tuned = tune(_rankings(dense_right=True, lexical_right=False), recipe_grid(RRF))
    # rrf sums the noise chunk's two ranks past the gold one's single rank; weights above 0.5
    # rank gold first (0.5 ties and goes to the better dense rank); the first winner is kept
    assert recipe_label(tuned.recipe) == "dense"
    assert [k for k, v in tuned.table.items() if v == 1.0] == [
        "dense",
        "weighted:0.85",
        "weighted:0.7",
        "weighted:0.5",
    ]
    assert tuned.folds == 5 and len(tuned.run) == N


def test_tuning_picks_the_lowest_dense_weight_when_only_the_lexical_side_is_right() -> None:
    tuned = tune(_rankings(dense_right=False, lexical_right=True), recipe_grid(RRF))
    # 0.3 * noise(dense 1, lexical 0) = 0.3 < 0.7 * gold(lexical 1): only w=0.3 ranks gold first
    assert recipe_label(tuned.recipe) == "weighted:0.3"
    assert tuned.table["weighted:0.3"] == 1.0
    assert all(v < 1.0 for k, v in tuned.table.items() if k != "weighted:0.3")


def test_gate_compares_the_current_recipe_with_the_candidates_tuned_one() -> None:
    # Both models are equally wrong on the dense side; the lexical side is right. The current
    # version keeps its stored recipe (dense only), the candidate is tuned to lean lexical.
    stored = replace(FusionRecipe(), method="weighted", dense_weight=1.0)
    rankings = _rankings(dense_right=False, lexical_right=True)
    tuned = compare(rankings, rankings, stored, tune_recipe=True)
    assert tuned.current_recipe == stored
    assert tuned.candidate_recipe is not None
    assert recipe_label(tuned.candidate_recipe) == "weighted:0.3"
    assert tuned.candidate["ndcg@10"] == pytest.approx(1.0)
    assert tuned.current["ndcg@10"] < 0.7  # gold second behind the noise chunk, every time
    assert tuned.recipes is not None and tuned.recipes["dense"] == pytest.approx(
        tuned.current["ndcg@10"], abs=1e-4
    )
    # Without tuning, both use the stored recipe and score the same.
    same = compare(rankings, rankings, stored, tune_recipe=False)
    assert same.candidate == same.current and same.recipes is None
    # Dense serving: no fusion for either.
    dense = compare(rankings, rankings, None)
    assert dense.current_recipe is None and dense.candidate_recipe is None


def test_cross_fitting_does_not_let_a_recipe_win_on_the_questions_that_chose_it() -> None:
    # Half the questions favour dense, half lexical: on all of them no recipe wins everywhere,
    # and the cross-fitted score is no higher than the best single recipe's.
    a = _rankings(dense_right=True, lexical_right=False)
    b = _rankings(dense_right=False, lexical_right=True)
    dense = [*a.dense[:10], *b.dense[10:]]
    mixed = Rankings(dense, [*a.lexical[:10], *b.lexical[10:]], a.doc_of, a.gold)
    tuned = tune(mixed, recipe_grid(RRF))
    cross = sum(score(mixed, tuned.run)[1]) / N
    assert cross <= max(tuned.table.values()) + 1e-9


def _joined(*parts: Rankings) -> Rankings:
    """Several question sets as one (their chunk and document names must not clash)."""
    doc_of: dict[str, str] = {}
    for p in parts:
        doc_of |= dict(p.doc_of)
    return Rankings(
        [d for p in parts for d in p.dense],
        [x for p in parts for x in p.lexical],
        doc_of,
        [g for p in parts for g in p.gold],
    )


def _renamed(r: Rankings, tag: str) -> Rankings:
    """``r`` with every chunk and document name prefixed by ``tag``."""
    return Rankings(
        [[(tag + c, s) for c, s in d] for d in r.dense],
        [[(tag + c, s) for c, s in x] for x in r.lexical],
        {tag + c: tag + d for c, d in r.doc_of.items()},
        [[tag + g for g in gs] for gs in r.gold],
    )


def test_questions_picked_by_misses_judge_but_never_tune_the_recipe() -> None:
    # 20 questions both sides get right (every recipe scores 1.0) and 20 feedback questions
    # that only the lexical side gets right, as replayed misses of a dense-leaning model are.
    easy = _renamed(_rankings(dense_right=True, lexical_right=True), "e")
    misses = _renamed(_rankings(dense_right=False, lexical_right=True), "m")
    both = _joined(easy, misses)
    grid = recipe_grid(RRF)
    assert recipe_label(tune(both, grid).recipe) == "weighted:0.3"  # the misses would pull it
    flags = [True] * N + [False] * N
    tuned = tune(both, grid, tunable=flags)
    assert recipe_label(tuned.recipe) == "rrf:60" and tuned.questions == N
    # the feedback questions are still scored, with the recipe chosen without them
    assert set(tuned.run) == {str(i) for i in range(2 * N)}
    assert tuned.run == both.run(grid[0])
    compared = compare(both, both, RRF, tunable=flags)
    assert compared.recipe_questions == N and compared.candidate == compared.current


def test_too_few_tuning_questions_keep_the_current_recipe() -> None:
    lexical_only = _rankings(dense_right=False, lexical_right=True)
    few = MIN_RECIPE_QUESTIONS - 1
    picked = Rankings(
        lexical_only.dense[:few],
        lexical_only.lexical[:few],
        lexical_only.doc_of,
        lexical_only.gold[:few],
    )
    tuned = tune(picked, recipe_grid(RRF))
    assert recipe_label(tuned.recipe) == "rrf:60"
    assert tuned.table["weighted:0.3"] == 1.0 > tuned.table["rrf:60"]


def test_a_win_within_one_standard_error_keeps_the_current_recipe() -> None:
    # 29 questions where every recipe ties, one where weighted:0.3 alone finds the gold
    # document: the gain's mean equals its standard error, so it is not taken as a win.
    ties = _renamed(_rankings(dense_right=True, lexical_right=True), "t")
    one = _renamed(_rankings(dense_right=False, lexical_right=True), "o")
    lucky = Rankings(
        [*ties.dense, *ties.dense[:9], one.dense[0]],
        [*ties.lexical, *ties.lexical[:9], one.lexical[0]],
        dict(ties.doc_of) | dict(one.doc_of),
        [*ties.gold, *ties.gold[:9], one.gold[0]],
    )
    tuned = tune(lucky, recipe_grid(RRF))
    assert max(tuned.table, key=lambda k: tuned.table[k]) == "weighted:0.3"
    assert recipe_label(tuned.recipe) == "rrf:60"

"""Fusion of a dense and a lexical ranking: exact orders, ties, empty sides, recipes."""

from __future__ import annotations

from typing import Any

import pytest

from ragloop.core.errors import ConfigError
from ragloop.core.fusion import Fused, FusionRecipe, fuse
from ragloop.core.records import ModelVersion
from ragloop.core.runtime import recipe_for
from ragloop.core.settings import Settings

DENSE = [("a", 0.9), ("b", 0.8), ("c", 0.5)]
LEXICAL = [("c", 12.0), ("d", 6.0), ("a", 3.0)]


def _ids(fused: list[Fused]) -> list[str]:
    return [f.chunk_id for f in fused]


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = fuse(FusionRecipe(method="rrf", rrf_k=60), DENSE, LEXICAL)
    # a: 1/61 + 1/63, c: 1/63 + 1/61 (tie; a has dense rank 1), b: 1/62, d: 1/62 (tie; b is
    # dense-ranked).
    assert _ids(fused) == ["a", "c", "b", "d"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 63)
    by_id = {f.chunk_id: f for f in fused}
    assert (by_id["a"].dense_score, by_id["a"].lexical_score) == (0.9, 3.0)
    assert (by_id["b"].dense_score, by_id["b"].lexical_score) == (0.8, None)
    assert (by_id["d"].dense_score, by_id["d"].lexical_score) == (None, 6.0)


def test_rrf_k_trades_a_single_top_rank_against_agreement() -> None:
    dense = [("top", 0.9), ("x", 0.8), ("y", 0.7), ("both", 0.6)]
    lexical = [("l1", 9.0), ("l2", 8.0), ("l3", 7.0), ("both", 6.0)]
    # k=1: top = 1/2 beats both = 2/5; k=60: both = 2/64 beats top = 1/61.
    assert _ids(fuse(FusionRecipe(method="rrf", rrf_k=1), dense, lexical))[:3] == [
        "top",
        "l1",
        "both",
    ]
    assert _ids(fuse(FusionRecipe(method="rrf", rrf_k=60), dense, lexical))[:3] == [
        "both",
        "top",
        "l1",
    ]


def test_weighted_min_max_and_the_dense_weight() -> None:
    # dense normalised: a 1, b 0.75, c 0; lexical: c 1, d 1/3, a 0
    dense_only = fuse(FusionRecipe(method="weighted", dense_weight=1.0), DENSE, LEXICAL)
    assert _ids(dense_only)[:2] == ["a", "b"]
    lexical_only = fuse(FusionRecipe(method="weighted", dense_weight=0.0), DENSE, LEXICAL)
    assert _ids(lexical_only)[:2] == ["c", "d"]
    half = fuse(FusionRecipe(method="weighted", dense_weight=0.5), DENSE, LEXICAL)
    # a 0.5, c 0.5 (tie: a has the better dense rank), b 0.375, d 1/6
    assert _ids(half) == ["a", "c", "b", "d"]
    assert [f.score for f in half] == pytest.approx([0.5, 0.5, 0.375, 1 / 6])


def test_one_side_empty_keeps_the_other_sides_order() -> None:
    for method in ("rrf", "weighted"):
        recipe = FusionRecipe(method=method)
        assert _ids(fuse(recipe, DENSE, [])) == ["a", "b", "c"]
        assert _ids(fuse(recipe, [], LEXICAL)) == ["c", "d", "a"]
        assert fuse(recipe, [], []) == []


def test_all_equal_scores_normalise_to_one_and_ties_fall_to_ranks() -> None:
    fused = fuse(FusionRecipe(method="weighted"), [("q", 0.5), ("p", 0.5)], [])
    assert [(f.chunk_id, f.score) for f in fused] == [("q", 0.5), ("p", 0.5)]  # dense rank
    fused = fuse(FusionRecipe(method="rrf"), [("q", 0.5)], [("p", 1.0)])
    assert _ids(fused) == ["q", "p"]  # same rank 1 each: the dense one first


def test_recipe_validation_and_round_trip() -> None:
    recipe = FusionRecipe(method="weighted", dense_weight=0.7, depth=80)
    assert FusionRecipe.from_dict(recipe.to_dict() | {"future": 1}) == recipe
    with pytest.raises(ConfigError):
        FusionRecipe(dense_weight=1.5)
    with pytest.raises(ConfigError):
        FusionRecipe(method="max")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        FusionRecipe(rrf_k=0)


def _version(info: dict[str, Any]) -> ModelVersion:
    return ModelVersion("v1", "m", None, 3, 16, "coll", "active", 0.0, info)


def test_a_versions_recipe_beats_the_default_and_explicit_settings_beat_both() -> None:
    stored = _version({"fusion": {"method": "weighted", "dense_weight": 0.3}})
    legacy = _version({})
    plain = Settings()
    assert recipe_for(stored, plain) == FusionRecipe(method="weighted", dense_weight=0.3)
    assert recipe_for(legacy, plain) == FusionRecipe()
    tuned = Settings(fusion_rrf_k=10)  # explicit: overrides only that field
    assert recipe_for(stored, tuned) == FusionRecipe(method="weighted", dense_weight=0.3, rrf_k=10)
    assert recipe_for(legacy, tuned) == FusionRecipe(rrf_k=10)

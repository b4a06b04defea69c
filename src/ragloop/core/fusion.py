"""Fusing a dense and a lexical ranking into one: the recipe and the two methods.

A ``FusionRecipe`` belongs to a model version (stored in its ``info["fusion"]``): the loop may
tune it per version, and a hot-swap changes embedder, collection and recipe together. Settings
give the default for versions that carry none; a ``RAGLOOP_FUSION_*`` variable set explicitly
overrides every version's.

- ``rrf``: reciprocal-rank fusion, ``sum 1 / (rrf_k + rank)`` over the sides that ranked the
  chunk (rank from 1). Scale-free, so it needs no calibration between cosine and BM25.
- ``weighted``: each side's scores min-max normalised over its own candidates, combined as
  ``w * dense + (1 - w) * lexical``; a side that did not return the chunk contributes 0 (as low
  as its worst candidate).

Ties (equal fused scores) go to the better single rank, then the better dense rank, then the
chunk id, so a ranking is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from ragloop.core.errors import ConfigError

FusionMethod = Literal["rrf", "weighted"]
RetrievalMode = Literal["dense", "lexical", "hybrid"]
RETRIEVAL_MODES: tuple[RetrievalMode, ...] = ("dense", "lexical", "hybrid")


@dataclass(frozen=True)
class FusionRecipe:
    """How hybrid retrieval combines the two sides, and how deep it reads each."""

    # Weighted at 0.5 beat rrf on every corpus measured, FAQ-style paraphrases included
    # (docs/quality.md, "Retrieval modes"), as convex combinations did in published studies.
    method: FusionMethod = "weighted"
    rrf_k: int = 60
    dense_weight: float = 0.5
    depth: int = 50

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "weighted"):
            raise ConfigError(f"fusion method must be rrf or weighted, got {self.method!r}")
        if self.rrf_k < 1:
            raise ConfigError(f"fusion rrf_k must be at least 1, got {self.rrf_k}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ConfigError(f"fusion dense_weight must lie in [0, 1], got {self.dense_weight}")
        if self.depth < 1:
            raise ConfigError(f"fusion depth must be at least 1, got {self.depth}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what a model version stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FusionRecipe:
        """A recipe from its stored form; unknown keys are ignored (a newer writer's)."""
        known = {k: data[k] for k in ("method", "rrf_k", "dense_weight", "depth") if k in data}
        return cls(**known)

    def with_overrides(self, overrides: Mapping[str, Any]) -> FusionRecipe:
        """This recipe with some fields replaced (explicit settings)."""
        return replace(self, **dict(overrides)) if overrides else self


@dataclass(frozen=True)
class Fused:
    """One chunk of a fused ranking: the fused score and each side's own score (None when
    that side did not return it)."""

    chunk_id: str
    score: float
    dense_score: float | None
    lexical_score: float | None


Ranking = Sequence[tuple[str, float]]


def fuse(recipe: FusionRecipe, dense: Ranking, lexical: Ranking) -> list[Fused]:
    """Merge two best-first rankings of (chunk id, score) by the recipe's method."""
    d_score = {cid: s for cid, s in dense}
    l_score = {cid: s for cid, s in lexical}
    d_rank = {cid: r for r, (cid, _) in enumerate(dense, start=1)}
    l_rank = {cid: r for r, (cid, _) in enumerate(lexical, start=1)}
    ids = list(dict.fromkeys([c for c, _ in dense] + [c for c, _ in lexical]))
    if recipe.method == "rrf":
        fused = {
            cid: sum(1.0 / (recipe.rrf_k + r[cid]) for r in (d_rank, l_rank) if cid in r)
            for cid in ids
        }
    else:
        d_norm, l_norm = _minmax(d_score), _minmax(l_score)
        w = recipe.dense_weight
        fused = {cid: w * d_norm.get(cid, 0.0) + (1 - w) * l_norm.get(cid, 0.0) for cid in ids}

    def order(cid: str) -> tuple[float, float, float, str]:
        best = min(d_rank.get(cid, math.inf), l_rank.get(cid, math.inf))
        return (-fused[cid], best, d_rank.get(cid, math.inf), cid)

    return [
        Fused(cid, fused[cid], d_score.get(cid), l_score.get(cid)) for cid in sorted(ids, key=order)
    ]


def _minmax(scores: Mapping[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi == lo:  # one candidate, or all equal: each is as good as the best
        return {cid: 1.0 for cid in scores}
    return {cid: (s - lo) / (hi - lo) for cid, s in scores.items()}

"""The promotion gate: candidate and current model scored the same way on held-out questions
(or an admin-named BEIR dataset); only a win by the configured margin promotes, and on held-out
questions only a win that is not noise.

A few dozen held-out questions move by a few points of nDCG when a model changes at all: a
retrain on deliberately shuffled pairs once passed a margin-only gate (+0.028 on 60 questions).
So the per-question differences are resampled (paired bootstrap) and the lower end of their
95% one-sided interval must be above zero as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ragloop.eval.metrics import evaluate_run, per_query
from ragloop.eval.search import ExactIndex, best_per_document

PRIMARY = "ndcg@10"
KS = (1, 3, 5, 10, 100)
CONFIDENCE = 0.95
BOOTSTRAP_ROUNDS = 2000


@dataclass
class GateResult:
    """Both scores, the decision, and on what it was decided."""

    gate_set: str
    n_queries: int
    primary: str
    current: dict[str, float]
    candidate: dict[str, float]
    delta: float
    margin: float
    promote: bool
    reason: str
    #: Lower end of the one-sided bootstrap interval of the mean per-question gain (held-out
    #: pairs only; None when per-question scores were not available).
    delta_lower_bound: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def score_chunks(
    chunk_ids: Sequence[str],
    chunk_docs: Sequence[str],
    chunk_vecs: np.ndarray,
    query_vecs: np.ndarray,
    gold_docs: Sequence[Sequence[str]],
) -> dict[str, float]:
    """Retrieval metrics at document level: exact search over chunks, each document scored by
    its best chunk (as the service and the evaluation harness's service mode do)."""
    return evaluate_run(*_run(chunk_ids, chunk_docs, chunk_vecs, query_vecs, gold_docs), KS)


def score_with_per_query(
    chunk_ids: Sequence[str],
    chunk_docs: Sequence[str],
    chunk_vecs: np.ndarray,
    query_vecs: np.ndarray,
    gold_docs: Sequence[Sequence[str]],
) -> tuple[dict[str, float], list[float]]:
    """``score_chunks``'s metrics plus the primary metric of each question, from one search."""
    run, qrels = _run(chunk_ids, chunk_docs, chunk_vecs, query_vecs, gold_docs)
    scores = per_query(run, qrels, (10,), ("ndcg",))
    primary = [scores[str(i)][PRIMARY] if str(i) in scores else 0.0 for i in range(len(gold_docs))]
    return evaluate_run(run, qrels, KS), primary


def _run(
    chunk_ids: Sequence[str],
    chunk_docs: Sequence[str],
    chunk_vecs: np.ndarray,
    query_vecs: np.ndarray,
    gold_docs: Sequence[Sequence[str]],
) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    index = ExactIndex(list(chunk_ids), chunk_vecs)
    doc_of = dict(zip(chunk_ids, chunk_docs, strict=True))
    rankings = index.search(query_vecs, max(KS) * 3)
    run = {
        str(i): [d for d, _ in best_per_document((doc_of[c], s) for c, s in ranking)]
        for i, ranking in enumerate(rankings)
    }
    qrels = {str(i): dict.fromkeys(gold, 1) for i, gold in enumerate(gold_docs)}
    return run, qrels


def bootstrap_lower_bound(deltas: Sequence[float], seed: int = 0) -> float:
    """Lower end of the one-sided ``CONFIDENCE`` interval of the mean of paired differences."""
    d = np.asarray(deltas, dtype=float)
    if len(d) == 0:
        return 0.0
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(BOOTSTRAP_ROUNDS, len(d)))].mean(axis=1)
    return float(np.quantile(means, 1 - CONFIDENCE))


def decide(
    gate_set: str,
    n_queries: int,
    current: dict[str, float],
    candidate: dict[str, float],
    margin: float,
    per_query_deltas: Sequence[float] | None = None,
) -> GateResult:
    """Promote only when the candidate beats the current model by at least ``margin`` and,
    given per-question differences, when their bootstrap lower bound is above zero."""
    delta = candidate[PRIMARY] - current[PRIMARY]
    lower = bootstrap_lower_bound(per_query_deltas) if per_query_deltas is not None else None
    if n_queries == 0:
        promote, reason = False, "no held-out questions to judge the candidate on"
    elif delta < margin:
        promote, reason = False, f"{PRIMARY} changed by {delta:+.4f}, below the margin {margin}"
    elif lower is not None and lower <= 0:
        promote, reason = (
            False,
            f"{PRIMARY} improved by {delta:+.4f} on {n_queries} questions, but that is within "
            f"noise (95% lower bound {lower:+.4f})",
        )
    else:
        bound = f", 95% lower bound {lower:+.4f}" if lower is not None else ""
        promote, reason = True, f"{PRIMARY} improved by {delta:+.4f} (margin {margin}{bound})"
    return GateResult(
        gate_set,
        n_queries,
        PRIMARY,
        current,
        candidate,
        round(delta, 6),
        margin,
        promote,
        reason,
        None if lower is None else round(lower, 6),
    )

"""The promotion gate: candidate and current model scored the same way on held-out questions
(or an admin-named BEIR dataset), each with its own fusion recipe; only a win by the configured
margin promotes, on held-out questions only a win that is not noise, only on enough questions
(``min_gate_questions``), and only when the candidate forgot nothing (``forgetting``).

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

from ragloop.eval.metrics import DEFAULT_KS, PRIMARY_METRIC, evaluate_run, per_query
from ragloop.eval.search import ExactIndex, best_per_document
from ragloop.finetune.forgetting import ForgettingCheck

KS = DEFAULT_KS
CONFIDENCE = 0.95
BOOTSTRAP_ROUNDS = 2000
#: At most this many per-question scores are kept in a gate report, questions cut to this length.
PER_QUESTION_CAP = 500
QUESTION_CHARS = 300


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
    #: The fewest questions a decision may rest on (0: no minimum).
    min_questions: int = 0
    #: dense, or hybrid (fused with each model's recipe), as serving retrieves.
    retrieval: str = "dense"
    #: The current version's stored recipe and the candidate's tuned one (None: no fusion).
    current_recipe: dict[str, Any] | None = None
    candidate_recipe: dict[str, Any] | None = None
    #: The candidate's primary metric under each recipe of the tuning grid (in-sample, on
    #: the questions that tune) and how many questions those are.
    recipes: dict[str, float] | None = None
    recipe_questions: int | None = None
    #: The no-forgetting check (``forgetting.ForgettingCheck.to_dict``).
    forgetting: dict[str, Any] | None = None
    #: Where the gate questions came from (labelled held-out, headings/titles, LLM...).
    question_origins: dict[str, int] | None = None
    #: The primary metric of each gate question for both models, ``{question, current,
    #: candidate}`` (the first ``PER_QUESTION_CAP``, questions cut to ``QUESTION_CHARS``).
    per_question: list[dict[str, Any]] | None = None

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
    name, k = PRIMARY_METRIC.split("@")
    scores = per_query(run, qrels, (int(k),), (name,))
    primary = [
        scores[str(i)][PRIMARY_METRIC] if str(i) in scores else 0.0 for i in range(len(gold_docs))
    ]
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


def per_question_scores(
    questions: Sequence[str], current: Sequence[float], candidate: Sequence[float]
) -> list[dict[str, Any]]:
    """``GateResult.per_question``: each question's primary metric for both models."""
    return [
        {
            "question": q[:QUESTION_CHARS],
            "current": round(float(c), 6),
            "candidate": round(float(n), 6),
        }
        for q, c, n in list(zip(questions, current, candidate, strict=False))[:PER_QUESTION_CAP]
    ]


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
    *,
    min_questions: int = 0,
    forgetting: ForgettingCheck | None = None,
    shortfall: str | None = None,
) -> GateResult:
    """Promote only when there are at least ``min_questions`` questions, the candidate beats
    the current model by at least ``margin``, given per-question differences their bootstrap
    lower bound is above zero, and the no-forgetting check passed. ``shortfall`` is what the
    reason says when there are too few questions (what is missing)."""
    metric = PRIMARY_METRIC
    delta = candidate[metric] - current[metric]
    lower = bootstrap_lower_bound(per_query_deltas) if per_query_deltas is not None else None
    if n_queries == 0:
        promote, reason = False, shortfall or "no held-out questions to judge the candidate on"
    elif n_queries < min_questions:
        promote, reason = (
            False,
            shortfall or (f"the gate needs {min_questions} questions and has {n_queries}"),
        )
    elif delta < margin:
        promote, reason = False, f"{metric} changed by {delta:+.4f}, below the margin {margin}"
    elif lower is not None and lower <= 0:
        promote, reason = (
            False,
            f"{metric} improved by {delta:+.4f} on {n_queries} questions, but that is within "
            f"noise (95% lower bound {lower:+.4f})",
        )
    elif forgetting is not None and not forgetting.passed:
        promote, reason = (
            False,
            f"{metric} improved by {delta:+.4f}, but it forgot: {forgetting.detail}",
        )
    else:
        bound = f", 95% lower bound {lower:+.4f}" if lower is not None else ""
        promote, reason = True, f"{metric} improved by {delta:+.4f} (margin {margin}{bound})"
    return GateResult(
        gate_set,
        n_queries,
        metric,
        current,
        candidate,
        round(delta, 6),
        margin,
        promote,
        reason,
        None if lower is None else round(lower, 6),
        min_questions=min_questions,
        forgetting=forgetting.to_dict() if forgetting is not None else None,
    )

"""The promotion gate: candidate and current model scored the same way on held-out questions
(or an admin-named BEIR dataset); only a win by the configured margin promotes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ragloop.eval.metrics import evaluate_run
from ragloop.eval.search import ExactIndex, best_per_document

PRIMARY = "ndcg@10"
KS = (1, 3, 5, 10, 100)


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
    index = ExactIndex(list(chunk_ids), chunk_vecs)
    doc_of = dict(zip(chunk_ids, chunk_docs, strict=True))
    rankings = index.search(query_vecs, max(KS) * 3)
    run = {
        str(i): [d for d, _ in best_per_document((doc_of[c], s) for c, s in ranking)]
        for i, ranking in enumerate(rankings)
    }
    qrels = {str(i): dict.fromkeys(gold, 1) for i, gold in enumerate(gold_docs)}
    return evaluate_run(run, qrels, KS)


def decide(
    gate_set: str,
    n_queries: int,
    current: dict[str, float],
    candidate: dict[str, float],
    margin: float,
) -> GateResult:
    """Promote only when the candidate beats the current model by at least ``margin``."""
    delta = candidate[PRIMARY] - current[PRIMARY]
    if n_queries == 0:
        promote, reason = False, "no held-out questions to judge the candidate on"
    elif delta >= margin:
        promote, reason = True, f"{PRIMARY} improved by {delta:+.4f} (margin {margin})"
    else:
        promote, reason = False, f"{PRIMARY} changed by {delta:+.4f}, below the margin {margin}"
    return GateResult(
        gate_set, n_queries, PRIMARY, current, candidate, round(delta, 6), margin, promote, reason
    )

"""IR metrics as pure functions over a ranking and graded judgements.

Definitions follow trec_eval, which BEIR and MTEB report through pytrec_eval:

- nDCG@k: gain = grade (linear, not 2^grade - 1), discount 1/log2(rank + 1); the ideal ranking
  is every judged document sorted by grade, cut at k.
- MRR@k: 1/rank of the first relevant document within k, else 0.
- Recall@k: relevant documents in the top k / all relevant documents.
- Precision@k: relevant documents in the top k / k (a short ranking is not rewarded).
- MAP@k: sum of precision at each relevant rank within k / all relevant documents (trec_eval's
  ``map_cut``; sentence-transformers divides by min(k, relevant) instead, which only differs
  when a query has more than k relevant documents).
- accuracy@k: 1 if any relevant document is in the top k (``success`` in trec_eval).

"Relevant" means a grade above 0. A query with no relevant document is not scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

Grades = Mapping[str, int]
Qrels = Mapping[str, Grades]
Run = Mapping[str, Sequence[str]]

METRICS = ("ndcg", "mrr", "map", "recall", "precision", "accuracy")
DEFAULT_KS = (1, 3, 5, 10, 100)
#: The metric reports compare models by and the promotion gate decides on.
PRIMARY_METRIC = "ndcg@10"


def _top(ranked: Sequence[str], k: int) -> list[str]:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    # Rankings are sets in order; a repeated id would be counted twice by the sums below.
    return list(dict.fromkeys(ranked))[:k]


def _relevant(grades: Grades) -> set[str]:
    return {d for d, g in grades.items() if g > 0}


def dcg(gains: Iterable[float]) -> float:
    """Discounted cumulative gain of gains listed best rank first."""
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(ranked: Sequence[str], grades: Grades, k: int) -> float:
    """nDCG@k with graded (linear) gains; 0 when nothing is relevant."""
    top = _top(ranked, k)
    ideal = dcg(sorted((g for g in grades.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg(max(grades.get(d, 0), 0) for d in top) / ideal


def mrr_at_k(ranked: Sequence[str], grades: Grades, k: int) -> float:
    """Reciprocal rank of the first relevant document within the top k, else 0."""
    for rank, doc in enumerate(_top(ranked, k), start=1):
        if grades.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def recall_at_k(ranked: Sequence[str], grades: Grades, k: int) -> float:
    """Share of the relevant documents found in the top k; 0 when nothing is relevant."""
    relevant = _relevant(grades)
    if not relevant:
        return 0.0
    return sum(1 for d in _top(ranked, k) if d in relevant) / len(relevant)


def precision_at_k(ranked: Sequence[str], grades: Grades, k: int) -> float:
    """Relevant documents in the top k, divided by k."""
    return sum(1 for d in _top(ranked, k) if grades.get(d, 0) > 0) / k


def map_at_k(ranked: Sequence[str], grades: Grades, k: int) -> float:
    """Average precision cut at k, over all relevant documents (trec_eval ``map_cut``)."""
    relevant = _relevant(grades)
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for rank, doc in enumerate(_top(ranked, k), start=1):
        if doc in relevant:
            hits += 1
            total += hits / rank
    return total / len(relevant)


def accuracy_at_k(ranked: Sequence[str], grades: Grades, k: int) -> float:
    """1.0 when any relevant document is in the top k, else 0.0."""
    return 1.0 if any(grades.get(d, 0) > 0 for d in _top(ranked, k)) else 0.0


METRIC_FUNCTIONS: dict[str, Callable[[Sequence[str], Grades, int], float]] = {
    "ndcg": ndcg_at_k,
    "mrr": mrr_at_k,
    "map": map_at_k,
    "recall": recall_at_k,
    "precision": precision_at_k,
    "accuracy": accuracy_at_k,
}


def metric_names(ks: Sequence[int] = DEFAULT_KS, metrics: Sequence[str] = METRICS) -> list[str]:
    """Names like ``ndcg@10`` in a stable order: by metric, then by k."""
    return [f"{m}@{k}" for m in metrics for k in ks]


def per_query(
    run: Run, qrels: Qrels, ks: Sequence[int] = DEFAULT_KS, metrics: Sequence[str] = METRICS
) -> dict[str, dict[str, float]]:
    """Every metric at every k for each scored query (one with a relevant document).

    A scored query missing from ``run`` counts as an empty ranking, so dropping queries can
    never raise a score.
    """
    unknown = [m for m in metrics if m not in METRIC_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {', '.join(METRICS)}")
    out: dict[str, dict[str, float]] = {}
    for qid, grades in qrels.items():
        if not _relevant(grades):
            continue
        ranked = run.get(qid, ())
        out[qid] = {f"{m}@{k}": METRIC_FUNCTIONS[m](ranked, grades, k) for m in metrics for k in ks}
    return out


def evaluate_run(
    run: Run, qrels: Qrels, ks: Sequence[int] = DEFAULT_KS, metrics: Sequence[str] = METRICS
) -> dict[str, float]:
    """Mean of each metric over the scored queries; every value 0.0 when none is scored."""
    scores = per_query(run, qrels, ks, metrics)
    names = metric_names(ks, metrics)
    if not scores:
        return dict.fromkeys(names, 0.0)
    return {n: math.fsum(s[n] for s in scores.values()) / len(scores) for n in names}

"""No forgetting: a candidate that got better on the deployment's questions must not have got
worse at retrieval in general.

Two checks, one per gate:

- ``general_check``: a general BEIR set (``general_dataset``, e.g. SQuAD dev), its questions
  sampled to a bounded number (``general_max_queries``) so the gate stays fast, scored by dense
  exact search for the current model and the candidate; the candidate is refused when its
  nDCG@10 is more than ``max_general_drop`` below the current model's. Dense, not fused: the
  lexical side is the same for both models and would only dilute a drop of the embedder.
- ``drift_check``, when no general set is configured (it needs no external data): a fixed
  sample of the deployment's own chunks that no training row uses; for each, its 10 nearest
  chunks of the sample under the base model (the root of the version chain) and under the
  model judged. Their mean overlap (1.0: the same neighbourhoods) measures how far the
  representation has moved from what the base model learned in pre-training; the candidate is
  refused below ``min_neighbour_agreement``. A shuffled-label retrain scrambles neighbourhoods
  far below that; a useful fine-tune moves them much less (docs/learning-loop.md).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ragloop.core.embedding.base import Embedder
from ragloop.eval.datasets import BeirDataset
from ragloop.eval.metrics import PRIMARY_METRIC
from ragloop.eval.model_mode import evaluate_model

#: Neighbours compared per sampled chunk, and the sample's size.
NEIGHBOURS = 10
DRIFT_SAMPLE = 400
#: Documents of a general set kept besides its sampled questions' gold ones.
GENERAL_MAX_DOCS = 3000


@dataclass
class ForgettingCheck:
    """What the no-forgetting check measured and whether the candidate passes it."""

    check: str
    n: int
    current: float
    candidate: float
    limit: float
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def sample_general(dataset: BeirDataset, max_queries: int, seed: int) -> BeirDataset:
    """At most ``max_queries`` judged questions (seeded), with their gold documents and other
    documents up to ``GENERAL_MAX_DOCS``."""
    judged = sorted(q for q in dataset.queries if dataset.relevant(q))
    rng = random.Random(seed)
    rng.shuffle(judged)
    chosen = sorted(judged[:max_queries])
    gold = {d for q in chosen for d in dataset.relevant(q) if d in dataset.corpus}
    others = sorted(set(dataset.corpus) - gold)
    rng.shuffle(others)
    keep = gold | set(others[: max(0, GENERAL_MAX_DOCS - len(gold))])
    return BeirDataset(
        name=dataset.name,
        path=dataset.path,
        split=dataset.split,
        corpus={d: doc for d, doc in dataset.corpus.items() if d in keep},
        queries={q: dataset.queries[q] for q in chosen},
        qrels={q: dataset.qrels[q] for q in chosen},
    )


def general_check(
    current: Embedder, candidate: Embedder, dataset: BeirDataset, max_drop: float
) -> ForgettingCheck:
    """Both models' nDCG@10 on the (sampled) general set; refused when it drops too much."""
    cur = evaluate_model(current, dataset).by_dim[current.dimension][PRIMARY_METRIC]
    cand = evaluate_model(candidate, dataset).by_dim[candidate.dimension][PRIMARY_METRIC]
    drop = cur - cand
    passed = drop <= max_drop
    verb = "within" if passed else "more than"
    return ForgettingCheck(
        check=f"general set {dataset.name}/{dataset.split}",
        n=len(dataset.queries),
        current=round(cur, 4),
        candidate=round(cand, 4),
        limit=max_drop,
        passed=passed,
        detail=f"general {PRIMARY_METRIC} {cur:.4f} -> {cand:.4f} ({-drop:+.4f}), {verb} the "
        f"allowed drop {max_drop}",
    )


def neighbour_agreement(reference: np.ndarray, vectors: np.ndarray, k: int = NEIGHBOURS) -> float:
    """Mean share of each row's ``k`` nearest other rows that ``vectors`` and ``reference``
    agree on (1.0 when every neighbourhood is the same)."""
    n = len(reference)
    k = min(k, n - 1)
    if k <= 0:
        return 1.0

    def neighbours(v: np.ndarray) -> np.ndarray:
        sims = np.asarray(v, dtype=np.float32) @ np.asarray(v, dtype=np.float32).T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1, kind="stable")[:, :k]

    a, b = neighbours(reference), neighbours(vectors)
    shared = [len(set(x) & set(y)) for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    return float(np.mean(shared)) / k


def drift_sample(ids: list[str], trained: set[str], seed: int) -> list[int]:
    """Row indices of at most ``DRIFT_SAMPLE`` chunks no training row uses (seeded)."""
    rows = [i for i, cid in enumerate(ids) if cid not in trained]
    random.Random(seed).shuffle(rows)
    return sorted(rows[:DRIFT_SAMPLE])


def drift_check(
    base: np.ndarray, current: np.ndarray, candidate: np.ndarray, min_agreement: float
) -> ForgettingCheck:
    """Neighbour agreement with the base model, of the current model and of the candidate
    (not measured, and no refusal, on too few chunks to have neighbourhoods)."""
    check = "neighbour agreement with the base model"
    if len(base) <= 2 * NEIGHBOURS:
        detail = f"not measured: only {len(base)} chunks are not trained on"
        return ForgettingCheck(check, len(base), 1.0, 1.0, min_agreement, True, detail)
    cur = neighbour_agreement(base, current)
    cand = neighbour_agreement(base, candidate)
    passed = cand >= min_agreement
    verb = "at least" if passed else "below"
    return ForgettingCheck(
        check=check,
        n=len(base),
        current=round(cur, 4),
        candidate=round(cand, 4),
        limit=min_agreement,
        passed=passed,
        detail=f"top-{NEIGHBOURS} neighbour agreement with the base model {cur:.3f} -> "
        f"{cand:.3f} on {len(base)} untrained chunks, {verb} the minimum {min_agreement}",
    )

"""Exact nearest-neighbour search, Matryoshka truncation, and chunk-to-document ranking.

Vectors are unit length, so cosine similarity is a dot product. Ties are broken by ascending
document id, the order sentence-transformers' evaluator uses, so a ranking never depends on
batch sizes or corpus order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ragloop.core.errors import InvalidInputError

Ranking = list[tuple[str, float]]


def truncate(vectors: np.ndarray, dim: int) -> np.ndarray:
    """The first ``dim`` components of each row, re-normalised to unit length (Matryoshka).

    Re-normalising keeps dot products equal to cosine similarity, which is what a model
    trained with a Matryoshka loss is scored on; an all-zero prefix stays zero.
    """
    if not 1 <= dim <= vectors.shape[1]:
        raise InvalidInputError(f"dimension {dim} is outside 1..{vectors.shape[1]}")
    head = np.ascontiguousarray(vectors[:, :dim], dtype=np.float32)
    if dim == vectors.shape[1]:
        return head
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    return np.divide(head, norms, out=np.zeros_like(head), where=norms > 0)


def parse_dims(text: str | None, full: int | None = None) -> list[int]:
    """Parse ``384,256,128`` into distinct dimensions, largest first; checked against ``full``."""
    if text is None or not text.strip():
        return []
    try:
        dims = [int(p) for p in text.replace(" ", "").split(",") if p]
    except ValueError:
        raise InvalidInputError(
            f"--dims {text!r} is not a comma-separated list of integers"
        ) from None
    bad = [d for d in dims if d < 1 or (full is not None and d > full)]
    if bad or not dims:
        limit = f"1..{full}" if full else "positive"
        raise InvalidInputError(f"--dims {text!r}: every dimension must be {limit}")
    return sorted(set(dims), reverse=True)


class ExactIndex:
    """Brute-force inner-product search over a fixed matrix of unit vectors."""

    def __init__(self, ids: Sequence[str], vectors: np.ndarray, query_batch: int = 256) -> None:
        if len(ids) != vectors.shape[0]:
            raise ValueError(f"{len(ids)} ids for {vectors.shape[0]} vectors")
        self.ids = list(ids)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.query_batch = query_batch
        # Rank of each id in ascending id order: the tie-breaker, as one integer per row.
        order = sorted(range(len(self.ids)), key=self.ids.__getitem__)
        self._id_rank = np.empty(len(self.ids), dtype=np.int64)
        self._id_rank[np.asarray(order, dtype=np.int64)] = np.arange(len(self.ids))

    def search(self, queries: np.ndarray, k: int) -> list[Ranking]:
        """Top ``k`` (id, score) per query row, best first; queries are scored in batches so
        the score matrix never holds more than ``query_batch`` rows."""
        n = len(self.ids)
        k = min(k, n)
        out: list[Ranking] = []
        if k <= 0:
            return [[] for _ in range(len(queries))]
        for start in range(0, len(queries), self.query_batch):
            block = np.asarray(queries[start : start + self.query_batch], dtype=np.float32)
            scores = block @ self.vectors.T
            for row in scores:
                out.append(self._top(row, k))
        return out

    def _top(self, row: np.ndarray, k: int) -> Ranking:
        if k < len(row):
            cut = row[np.argpartition(-row, k - 1)[:k]].min()
            cand = np.flatnonzero(row >= cut)  # every tie at the cut competes on id
        else:
            cand = np.arange(len(row))
        order = cand[np.lexsort((self._id_rank[cand], -row[cand]))][:k]
        return [(self.ids[i], float(row[i])) for i in order]


def best_per_document(hits: Iterable[tuple[str, float]]) -> Ranking:
    """Collapse chunk hits ``(document_id, score)`` into documents scored by their best chunk,
    best first (ties by ascending id)."""
    best: dict[str, float] = {}
    for doc_id, score in hits:
        if doc_id not in best or score > best[doc_id]:
            best[doc_id] = score
    return sorted(best.items(), key=lambda item: (-item[1], item[0]))

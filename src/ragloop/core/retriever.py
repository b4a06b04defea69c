"""Dense retrieval over the active index: embed the query, search Chroma, join the catalog."""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np

from ragloop.core.errors import InvalidInputError
from ragloop.core.records import Hit
from ragloop.core.runtime import ActiveIndex
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.vectors import VectorStore, Where

MAX_K = 100


def search(
    index: ActiveIndex,
    store: VectorStore,
    catalog: Catalog,
    query: str,
    k: int = 5,
    where: Where | None = None,
) -> list[Hit]:
    """Top-``k`` chunks for ``query``, best first, with cosine scores.

    The catalog is the source of truth: a vector whose chunk is not in the catalog (left by a
    crash before repair) is never returned.
    """
    if not query.strip():
        raise InvalidInputError("the query is empty")
    if not 1 <= k <= MAX_K:
        raise InvalidInputError(f"k must be between 1 and {MAX_K}, got {k}")
    vector = index.query_vector(query)
    found = store.query(index.collection, vector, k, where)
    known = catalog.chunks_for_hits([cid for cid, _ in found])
    hits = []
    for cid, score in found:
        if cid not in known:
            continue
        chunk, title, source = known[cid]
        hits.append(
            Hit(
                chunk=chunk,
                score=score,
                document_title=title if title is not None else chunk.title,
                source=source or "",
            )
        )
    return hits


def best_chunk(
    store: VectorStore,
    collection: str,
    chunk_ids: Collection[str],
    question_vector: Callable[[], np.ndarray],
) -> str | None:
    """Which of one document's chunks answers a question best: exact cosine over its vectors.

    Feedback and imported judgements name documents; training wants the chunk the retriever
    should have ranked first. A single chunk needs no model, so ``question_vector`` is only
    called when there is a choice. None when none of the chunks has a stored vector.
    """
    ids = sorted(chunk_ids)
    if len(ids) <= 1:
        return ids[0] if ids else None
    stored = store.vectors(collection, ids)
    if not stored:
        return None
    have = list(stored)
    scores = np.stack([stored[i] for i in have]) @ np.asarray(question_vector(), dtype=np.float32)
    return have[int(np.argmax(scores))]

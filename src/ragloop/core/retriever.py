"""Retrieval over the active index: dense (Chroma), lexical (BM25) or both fused.

Every retrieval path (the query API and its stream, DocsGPT, OpenAI chat, LangChain, service
evaluation, feedback) calls ``search``; the mode comes from the index (``RAGLOOP_RETRIEVAL``)
unless the caller names one, and hybrid fuses with the active version's own recipe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from ragloop.core.errors import ConfigError, InvalidInputError
from ragloop.core.fusion import RETRIEVAL_MODES, Fused, RetrievalMode, fuse
from ragloop.core.records import Hit, display_title
from ragloop.core.runtime import ActiveIndex
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.vectors import VectorStore, Where

MAX_K = 100

log = logging.getLogger(__name__)


@dataclass
class SideRankings:
    """What each side returned before fusion, best first (chunk id, score), filled in by
    ``search`` when a caller passes one: the miss flags compare the two sides' top lists."""

    dense: list[tuple[str, float]] = field(default_factory=list)
    lexical: list[tuple[str, float]] = field(default_factory=list)
    #: The mode that actually ran (hybrid degrades to dense without a lexical index).
    mode: RetrievalMode | None = None


def search(
    index: ActiveIndex,
    store: VectorStore,
    catalog: Catalog,
    query: str,
    k: int = 5,
    where: Where | None = None,
    mode: RetrievalMode | None = None,
    vector: np.ndarray | None = None,
    sides: SideRankings | None = None,
) -> list[Hit]:
    """Top-``k`` chunks for ``query``, best first.

    ``mode`` (default: the index's) picks dense, lexical or hybrid; hybrid reads
    ``max(k, depth)`` candidates from each side and fuses them with ``index.fusion``. Every hit
    carries its dense cosine (computed from the stored vector when only BM25 found it), so
    callers that threshold on similarity (miss flags) see the same number in every mode. The
    catalog is the source of truth: a vector or entry whose chunk is not in the catalog (left
    by a crash before repair) is never returned. ``vector``: the query's embedding under
    ``index``, when the caller encoded many queries in one batch (mining negatives).
    ``sides``, when given, receives each side's own ranking before fusion (hybrid only; the
    lists stay empty in single-side modes) and the mode that ran.
    """
    if not query.strip():
        raise InvalidInputError("the query is empty")
    if not 1 <= k <= MAX_K:
        raise InvalidInputError(f"k must be between 1 and {MAX_K}, got {k}")
    mode = mode or index.retrieval
    if mode not in RETRIEVAL_MODES:
        raise InvalidInputError(f"retrieval mode must be one of {RETRIEVAL_MODES}, got {mode!r}")
    lexical = catalog.lexical
    if mode != "dense" and lexical is None:
        if mode == "lexical":
            raise ConfigError("this catalog has no lexical index; use dense")
        log.warning("no lexical index in this catalog: hybrid runs as dense")
        mode = "dense"
    if vector is None:
        vector = index.query_vector(query)
    if mode == "dense":
        found = store.query(index.collection, vector, k, where)
        ranked = [Fused(cid, s, s, None) for cid, s in found]
    elif mode == "lexical":
        assert lexical is not None
        ranked = [Fused(cid, s, None, s) for cid, s in lexical.search(query, k, where)]
    else:
        assert lexical is not None
        depth = max(k, index.fusion.depth)
        dense = store.query(index.collection, vector, depth, where)
        lexical_ranked = lexical.search(query, depth, where)
        if sides is not None:
            sides.dense, sides.lexical = list(dense), list(lexical_ranked)
        ranked = fuse(index.fusion, dense, lexical_ranked)
    if sides is not None:
        sides.mode = mode
    return _hits(store, catalog, index.collection, vector, ranked, k)


def _hits(
    store: VectorStore,
    catalog: Catalog,
    collection: str,
    vector: np.ndarray,
    ranked: Sequence[Fused],
    k: int,
) -> list[Hit]:
    known = catalog.chunks_for_hits([f.chunk_id for f in ranked])
    top = [f for f in ranked if f.chunk_id in known][:k]
    unscored = [f.chunk_id for f in top if f.dense_score is None]
    cosines = _cosines(store, collection, vector, unscored) if unscored else {}
    hits = []
    for f in top:
        chunk, title, source = known[f.chunk_id]
        hits.append(
            Hit(
                chunk=chunk,
                score=f.score,
                document_title=display_title(title, chunk.title),  # with its section
                source=source or "",
                dense_score=f.dense_score if f.dense_score is not None else cosines.get(f.chunk_id),
                lexical_score=f.lexical_score,
            )
        )
    return hits


def _cosines(
    store: VectorStore, collection: str, vector: np.ndarray, ids: Sequence[str]
) -> dict[str, float]:
    # Stored vectors are unit length (Chroma cosine space is fed normalised embeddings), as is
    # the query vector, so the dot product is the cosine Chroma would have reported.
    stored = store.vectors(collection, list(ids))
    q = np.asarray(vector, dtype=np.float32)
    return {cid: float(np.dot(v, q)) for cid, v in stored.items()}


def best_dense_score(hits: Sequence[Hit]) -> float | None:
    """The highest dense cosine among ``hits`` (None when none has one).

    Miss flags threshold on this, not on ``Hit.score``: the threshold is calibrated in cosine
    units, and a fused or BM25 score has another scale.
    """
    return max((h.dense_score for h in hits if h.dense_score is not None), default=None)


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

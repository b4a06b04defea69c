"""The miss verdict of one answered question: which signals fire, each with its own reason.

The query log is the learning loop's input, so each flag names why it fired and the console
can filter by it:

- ``low_score``: nothing retrieved, or the best dense cosine among the hits is below the
  version's threshold (calibrated per corpus and model, see ``core.calibration``; an explicit
  ``RAGLOOP_MISS_SCORE_THRESHOLD`` beats it).
- ``no_overlap`` (hybrid only): the dense top-N and the lexical top-N share no document. Two
  retrievers that fail in different ways rarely agree by chance; when the answer is in the
  corpus they usually both see it near the top.
- ``weak_top`` (hybrid only): the dense and the lexical top-1 are different documents and the
  best cosine is no better than that of a typical question whose answer the corpus lacks
  (the calibration's "absent" median).
- ``no_answer``: the generator said the documents do not contain the answer.

Everything here is pure: hits and side rankings in, reasons out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ragloop.core.records import Hit
from ragloop.core.retriever import SideRankings, best_dense_score

#: Every reason this module can give, in the order a verdict lists them.
RETRIEVAL_REASONS = ("low_score", "no_overlap", "weak_top")


@dataclass(frozen=True)
class MissThresholds:
    """The cuts one model version's miss flags use, and where the low_score cut came from."""

    low_score: float
    #: None: not calibrated yet (too few chunks), so the weak_top signal is off.
    weak_top: float | None = None
    overlap_depth: int = 5
    #: ``calibrated``, ``setting`` (explicit RAGLOOP_MISS_SCORE_THRESHOLD) or ``fallback``.
    source: str = "fallback"


def _doc_key(hits: Sequence[Hit]) -> dict[str, str]:
    # Chunks of one document count as one answer; a side's chunk that is not among the hits
    # (its document unknown here) stands for itself.
    return {h.chunk.id: h.chunk.document_id for h in hits}


def retrieval_reasons(
    hits: Sequence[Hit], sides: SideRankings | None, thresholds: MissThresholds
) -> list[str]:
    """The retrieval signals that fire for one question (empty: retrieval looks fine)."""
    reasons = []
    best = best_dense_score(hits)
    if best is None or best < thresholds.low_score:
        reasons.append("low_score")
    if sides is None or sides.mode != "hybrid" or not hits:
        return reasons  # the disagreement signals need both sides' own rankings
    doc = _doc_key(hits)
    n = thresholds.overlap_depth
    dense_top = [doc.get(cid, cid) for cid, _ in sides.dense[:n]]
    lexical_top = [doc.get(cid, cid) for cid, _ in sides.lexical[:n]]
    if dense_top and not set(dense_top) & set(lexical_top):
        reasons.append("no_overlap")
    if (
        thresholds.weak_top is not None
        and best is not None
        and best < thresholds.weak_top
        and dense_top
        and lexical_top
        and dense_top[0] != lexical_top[0]
    ):
        reasons.append("weak_top")
    return reasons


def miss_reasons(
    hits: Sequence[Hit],
    sides: SideRankings | None,
    thresholds: MissThresholds,
    no_answer: bool,
) -> list[str]:
    """The full verdict: the retrieval signals, then the generator's abstention."""
    reasons = retrieval_reasons(hits, sides, thresholds)
    if no_answer:
        reasons.append("no_answer")
    return reasons

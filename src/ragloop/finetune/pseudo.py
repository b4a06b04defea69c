"""Pseudo-labels for misses nobody labelled: the configured LLM judges the retriever's top
candidates, and only a confident single choice becomes a pair."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragloop.core.errors import GeneratorError
from ragloop.core.generators.base import LLMGenerator
from ragloop.core.records import Hit

SYSTEM = (
    "You judge search results. Given a question and numbered candidate passages, name the one "
    "passage that answers the question. Reply exactly 'ANSWER: <number> CONFIDENCE: high' when "
    "you are sure, 'ANSWER: <number> CONFIDENCE: low' when unsure, or 'ANSWER: none' when no "
    "passage answers it."
)
_REPLY = re.compile(r"ANSWER:\s*(\d+|none)(?:\s*CONFIDENCE:\s*(high|low))?", re.IGNORECASE)


def judge(llm: LLMGenerator, question: str, candidates: Sequence[Hit]) -> str | None:
    """The chunk id the LLM confidently picks, or None (unsure, none, or a provider error)."""
    if not candidates:
        return None
    listing = "\n\n".join(
        f"[{i}] {h.document_title}\n{h.chunk.text[:1200]}" for i, h in enumerate(candidates, 1)
    )
    try:
        reply = llm.complete(SYSTEM, f"Question: {question}\n\nCandidates:\n{listing}", 20)
    except GeneratorError:
        return None
    m = _REPLY.search(reply)
    if not m or m.group(1).lower() == "none" or (m.group(2) or "").lower() != "high":
        return None
    n = int(m.group(1))
    return candidates[n - 1].chunk.id if 1 <= n <= len(candidates) else None

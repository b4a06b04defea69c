"""Synthetic (question, chunk) pairs, cached per chunk so a chunk is never asked twice.

With an LLM configured, it writes a few questions per chunk, each answerable from the chunk
alone (the recipe of the well-known embedding fine-tuning write-ups). Without one, an offline
pseudo-query method stands in: the heading of the chunk's section when it has one (a heading is
often the question its section answers), else a document's title for its first chunk (as in
title -> abstract pairs), then sentences cropped out of the chunk (inverse-cloze / cropping
pre-training). Either way the question is a span of the chunk, so training masks it out of the
positive (see ``pairs.mask_span``).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Sequence

from sqlalchemy import Engine, insert, select

from ragloop.core.errors import GeneratorError
from ragloop.core.generators.base import LLMGenerator
from ragloop.core.progress import ProgressFn
from ragloop.core.records import TITLE_SEPARATOR, ChunkRecord, section_heading
from ragloop.core.storage import schema as t

#: Versioned: cached questions of an older offline method are not reused.
OFFLINE_METHOD = "offline:heading+title+crop/v3"

SYSTEM = (
    "You write search questions for a retrieval benchmark. Given a passage, write questions "
    "that each stand alone: a reader who has not seen the passage understands every question, "
    "and the passage answers it. Do not refer to 'the passage' or 'the text'. Vary the "
    "wording; do not copy long phrases. Reply with one question per line and nothing else."
)

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def offline_questions(chunk: ChunkRecord, n: int) -> list[str]:
    """Section heading or title, then cropped sentences; deterministic per chunk.

    A chunk's title is ``Document > Section > ...``: the section's own heading describes the
    chunk, so it comes first when it has at least two words. The document title describes the
    whole document, so it is used for a document's first chunk only; paired with a later chunk
    it teaches noise.
    """
    out = []
    heading = section_heading(chunk.title).rstrip(" …:").strip()
    title = chunk.title.partition(TITLE_SEPARATOR)[0].strip()
    if len(heading.split()) >= 2:
        out.append(heading)
    elif chunk.seq == 0 and title and len(title.split()) >= 2:
        out.append(title)
    sentences = [s.strip() for s in _SENTENCE.split(chunk.text) if len(s.split()) >= 6]
    rng = random.Random(chunk.id)
    rng.shuffle(sentences)
    for sentence in sentences[: max(n - len(out), 1)]:
        words = sentence.split()
        if len(words) > 30:  # a long sentence is cropped to a span, as in cropping pre-training
            start = rng.randrange(0, len(words) - 30)
            sentence = " ".join(words[start : start + 30])
        out.append(sentence)
    return out[:n]


def parse_questions(reply: str, n: int) -> list[str]:
    """Questions from an LLM reply: one per line, numbering and bullets removed."""
    out = []
    for line in reply.splitlines():
        q = re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", line).strip()
        if len(q) >= 8 and q not in out:
            out.append(q)
    return out[:n]


def llm_questions(llm: LLMGenerator, chunk: ChunkRecord, n: int) -> list[str]:
    """Ask the LLM for ``n`` stand-alone questions the chunk answers."""
    prompt = f"Passage title: {chunk.title}\n\nPassage:\n{chunk.text}\n\nWrite {n} questions."
    return parse_questions(llm.complete(SYSTEM, prompt, max_tokens=400), n)


class SyntheticQuestions:
    """Questions per chunk, from the cache or freshly generated (then cached)."""

    def __init__(self, engine: Engine, llm: LLMGenerator | None, per_chunk: int) -> None:
        self.engine = engine
        self.llm = llm
        self.per_chunk = per_chunk
        self.method = f"llm:{llm.name}:{llm.model}" if llm is not None else OFFLINE_METHOD
        self.generated = 0
        self.cached = 0
        self.failed = 0

    def for_chunks(
        self,
        chunks: Sequence[ChunkRecord],
        progress: ProgressFn | None = None,
    ) -> dict[str, list[str]]:
        """Questions for each chunk id (chunks the LLM failed on are left out)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.synthetic_questions.c.chunk_id, t.synthetic_questions.c.questions).where(
                    t.synthetic_questions.c.method == self.method
                )
            ).all()
        cache = {cid: qs for cid, qs in rows}
        out: dict[str, list[str]] = {}
        fresh: list[dict[str, object]] = []
        for n, chunk in enumerate(chunks, start=1):
            if chunk.id in cache:
                out[chunk.id] = list(cache[chunk.id])
                self.cached += 1
            else:
                try:
                    qs = (
                        llm_questions(self.llm, chunk, self.per_chunk)
                        if self.llm is not None
                        else offline_questions(chunk, self.per_chunk)
                    )
                except GeneratorError:
                    self.failed += 1
                    continue
                out[chunk.id] = qs
                self.generated += 1
                fresh.append(
                    {
                        "chunk_id": chunk.id,
                        "method": self.method,
                        "questions": qs,
                        "created_at": time.time(),
                    }
                )
                if len(fresh) >= 500:
                    self._store(fresh)
                    fresh = []
            if progress and n % 200 == 0:
                progress("synthetic questions", n, len(chunks))
        self._store(fresh)
        return out

    def _store(self, rows: list[dict[str, object]]) -> None:
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(t.synthetic_questions), rows)

"""Answering a question: condense -> retrieve -> generate with citations -> detect misses -> log.

The same path serves the native API, its streaming variant and the DocsGPT and OpenAI routes.
A follow-up in a conversation (a request with history) is first rewritten into a stand-alone
question (``core.condense``, ``RAGLOOP_CONDENSE``): retrieval uses it and the log keeps it as
the query's ``question``, with what the user typed as ``raw_question``. An LLM generator
answers the question as typed, with the conversation; a generator that does not read the
conversation (extractive) answers the stand-alone question. The active index is read once per
question, so one answer never mixes two models. A provider failure degrades to the extractive
generator with ``generator_error`` set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ragloop.core.calibration import Calibrations
from ragloop.core.condense import Condensed, Condenser, build_condenser
from ragloop.core.errors import InvalidInputError
from ragloop.core.generators.base import Context, Generator, LLMGenerator, Turn, cited_numbers
from ragloop.core.generators.fallback import stream_with_fallback
from ragloop.core.miss_flags import miss_reasons
from ragloop.core.records import Hit
from ragloop.core.retriever import SideRankings, best_dense_score, search
from ragloop.core.runtime import ActiveIndex, Runtime
from ragloop.core.storage.querylog import QueryLog, QueryRecord
from ragloop.core.storage.vectors import Where


@dataclass
class QueryOutcome:
    """What a question got: the answer, its numbered sources, and the miss verdict.

    ``question`` is the text retrieval used (a follow-up's stand-alone form); ``raw_question``
    what the user typed when that differs, else None.
    """

    query_id: str
    question: str
    answer: str
    sources: list[Context]
    model_version: str
    generator: str
    generator_error: str | None
    miss: bool
    miss_reasons: list[str]
    citations: list[int] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    raw_question: str | None = None
    #: What made ``question`` stand-alone: ``llm``, ``rule`` or ``none``; and the LLM's error
    #: when the rule stood in for it.
    condensed_by: str = "none"
    condense_error: str | None = None


@dataclass(frozen=True)
class QueryRequest:
    """A validated question with its options."""

    question: str
    k: int
    where: Where | None = None
    generator: str | None = None
    history: Sequence[Turn] = ()
    conversation_id: str | None = None
    client: str | None = None


GeneratorProvider = Callable[[str | None], Generator]


class Answerer:
    """Runs the answer path for one runtime; thread-safe (shares only read-mostly objects)."""

    def __init__(
        self,
        runtime: Runtime,
        querylog: QueryLog,
        generators: GeneratorProvider,
        fallback: Generator,
        condenser: Condenser | None = None,
    ) -> None:
        self.rt = runtime
        self.log = querylog
        self.generators = generators
        self.fallback = fallback
        #: Rewrites follow-ups; by default the one ``RAGLOOP_CONDENSE`` names, whose LLM is the
        #: configured generator (a misconfiguration fails here, at start-up).
        self.condenser = condenser or build_condenser(runtime.settings, self._configured_llm)
        #: Per-version miss thresholds (calibrated lazily, switched with the model on a swap).
        self.calibrations = Calibrations(runtime)

    def validate(self, question: str, k: int | None) -> tuple[str, int]:
        """Check the question and k against the configured limits."""
        s = self.rt.settings
        question = question.strip()
        if not question:
            raise InvalidInputError("question is empty")
        if len(question) > s.max_question_chars:
            raise InvalidInputError(
                f"question is {len(question)} characters; the limit is {s.max_question_chars} "
                "(RAGLOOP_MAX_QUESTION_CHARS)"
            )
        k = s.default_k if k is None else k
        if not 1 <= k <= s.max_k:
            raise InvalidInputError(f"k must be between 1 and {s.max_k}, got {k}")
        return question, k

    def _configured_llm(self) -> LLMGenerator | None:
        generator = self.generators(None)
        return generator if isinstance(generator, LLMGenerator) else None

    def condense(self, req: QueryRequest) -> Condensed:
        """The stand-alone question retrieval should use (``req.question`` without history)."""
        if not req.history:
            return Condensed(req.question, "none")
        done = self.condenser.condense(req.question, req.history)
        text = done.text.strip()
        if not text:  # a plugin's empty rewrite: keep what was typed
            return Condensed(req.question, "none", done.error)
        return Condensed(text, done.method if text != req.question else "none", done.error)

    def retrieve(
        self, req: QueryRequest, sides: SideRankings | None = None
    ) -> tuple[ActiveIndex, list[Hit]]:
        """The active index (read once) and its top-k hits for ``req.question`` as given;
        ``sides`` receives each side's own ranking (the miss flags compare them)."""
        index = self.rt.active_index()
        hits = search(
            index, self.rt.store, self.rt.catalog, req.question, req.k, req.where, sides=sides
        )
        return index, hits

    def answer(self, req: QueryRequest) -> QueryOutcome:
        """Answer in one go and log the query."""
        events = list(self.stream(req))
        outcome = events[-1]["outcome"]
        assert isinstance(outcome, QueryOutcome)
        return outcome

    def stream(self, req: QueryRequest) -> Iterator[dict[str, Any]]:
        """Events: ``sources`` first, then ``delta`` texts, then ``end`` with the outcome.

        The query is logged when the answer is complete, also if the consumer stops early.
        """
        started = time.perf_counter()
        generator = self.generators(req.generator)  # unknown names fail before any work
        condensed = self.condense(req)
        condensed_ms = (time.perf_counter() - started) * 1000
        sides = SideRankings()
        index, hits = self.retrieve(replace(req, question=condensed.text), sides)
        retrieved_ms = (time.perf_counter() - started) * 1000
        contexts = [
            Context(
                n=i,
                chunk_id=h.chunk.id,
                document_id=h.chunk.document_id,
                title=h.document_title,
                source=h.source,
                text=h.chunk.text,
                score=h.score,
            )
            for i, h in enumerate(hits, start=1)
        ]
        yield {"event": "sources", "sources": contexts, "model_version": index.version.version}
        # An LLM reads the conversation, so it gets the question as typed; others get the
        # stand-alone question (the extractive generator matches its words).
        asked = req.question if isinstance(generator, LLMGenerator) else condensed.text
        answer = stream_with_fallback(generator, self.fallback, asked, contexts, req.history)
        parts: list[str] = []
        try:
            for delta in answer:
                parts.append(delta)
                yield {"event": "delta", "text": delta}
        finally:
            answer.close()
            done = answer.answer
            outcome = self._finish(
                req,
                condensed,
                index,
                hits,
                sides,
                contexts,
                done.generator if done else generator.name,
                answer.generator_error,
                bool(done and done.no_answer),
                done.text if done else "".join(parts),
            )
            outcome.timings_ms = {
                "retrieve": round(retrieved_ms - condensed_ms, 2),
                "generate": round((time.perf_counter() - started) * 1000 - retrieved_ms, 2),
                "total": round((time.perf_counter() - started) * 1000, 2),
            }
            if req.history:  # only a conversation's question is condensed
                outcome.timings_ms["condense"] = round(condensed_ms, 2)
            self.log.log(self._record(req, outcome, hits))
        yield {"event": "end", "outcome": outcome}

    def _finish(
        self,
        req: QueryRequest,
        condensed: Condensed,
        index: ActiveIndex,
        hits: list[Hit],
        sides: SideRankings,
        contexts: list[Context],
        used: str,
        error: str | None,
        no_answer: bool,
        text: str,
    ) -> QueryOutcome:
        text = text.strip()
        # The thresholds are the answering version's own (read with the index, so a swap
        # mid-question cannot pair one model's hits with another's cuts). low_score compares
        # dense cosines in every mode, never the fused or BM25 score.
        thresholds = self.calibrations.thresholds(index)
        reasons = miss_reasons(hits, sides, thresholds, no_answer)
        return QueryOutcome(
            query_id=self.log.new_id(),
            question=condensed.text,
            answer=text,
            sources=contexts,
            model_version=index.version.version,
            generator=used,
            generator_error=error,
            miss=bool(reasons),
            miss_reasons=reasons,
            citations=cited_numbers(text, len(contexts)),
            raw_question=req.question if condensed.text != req.question else None,
            condensed_by=condensed.method,
            condense_error=condensed.error,
        )

    def _record(self, req: QueryRequest, o: QueryOutcome, hits: list[Hit]) -> QueryRecord:
        return QueryRecord(
            id=o.query_id,
            created_at=time.time(),
            question=o.question,
            k=req.k,
            model_version=o.model_version,
            generator=o.generator,
            answer=o.answer,
            retrieved=[(h.chunk.id, h.score) for h in hits],
            top_score=best_dense_score(hits),  # cosine, comparable with the threshold
            miss=o.miss,
            miss_reasons=o.miss_reasons,
            latency_ms=o.timings_ms.get("total", 0.0),
            generator_error=o.generator_error,
            filters=dict(req.where or {}),
            conversation_id=req.conversation_id,
            client=req.client,
            raw_question=o.raw_question,
        )

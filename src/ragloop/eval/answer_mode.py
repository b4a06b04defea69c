"""Answer mode: every question with reference answers goes through the service's answer path.

``evaluate_answers`` asks ``core.answering.Answerer`` (retrieve top-k over the ingested data dir,
generate with the configured generator, the extractive one as fallback, exactly as the service
does) and scores the replies with ``answers.AnswerEvaluator``: exact match and token F1 against
the references, with the ``[n]`` citation markers taken out of the answer first, and citation
precision over the cited sources' documents. Evaluation questions are not written to the query
log by default: they would become misses for the learning loop to train on.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragloop.core.answering import Answerer, QueryOutcome, QueryRequest
from ragloop.core.errors import InvalidInputError
from ragloop.core.generators.base import Generator
from ragloop.core.generators.registry import build_generator
from ragloop.core.progress import ProgressFn
from ragloop.core.runtime import Runtime
from ragloop.core.storage.querylog import QueryLog, QueryRecord
from ragloop.eval.answers import AnswerEvaluator, AnswerReport, normalize_answer
from ragloop.eval.datasets import BeirDataset
from ragloop.eval.service_mode import check_coverage

_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def strip_citations(text: str) -> str:
    """The answer without its ``[n]`` / ``[n, m]`` citation markers."""
    return _CITATION.sub("", text).strip()


def contains_reference(prediction: str, references: Sequence[str]) -> bool:
    """Whether some normalised reference occurs in the normalised prediction as whole words.

    Exact match and F1 punish a long answer that holds the right span (an extractive sentence);
    this says how often the span is there at all.
    """
    padded = f" {normalize_answer(prediction)} "
    return any(ref and f" {ref} " in padded for ref in map(normalize_answer, references))


class _UnloggedQueries(QueryLog):
    """A query log that stores nothing (ids still work)."""

    def log(self, rec: QueryRecord) -> None:
        """Drop the record."""


@dataclass
class AnswerRun:
    """An answer-quality report with how it was produced: generator, k, misses, timings."""

    report: AnswerReport
    dataset_path: str
    info: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (without per-query rows)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.created_at))
        return {"mode": "answers", "dataset_path": self.dataset_path, "created_at": stamp} | (
            self.report.to_dict() | self.info | {"warnings": self.warnings}
        )

    def to_markdown(self) -> str:
        """A one-row summary table, then the settings and timings."""
        r, i = self.report, self.info
        cp = "n/a" if r.citation_precision is None else f"{r.citation_precision:.4f}"
        lines = [
            f"# {r.dataset} ({r.split}), answer quality",
            "",
            f"{r.n_queries} of {i['n_answerable']} questions with reference answers; "
            f"generator {r.model}, k = {i['k']}, model version {i['model_version']}.",
            "",
            "| generator | queries | exact match | token F1 | contains reference "
            "| citation precision | cited nothing | no_answer |",
            "|---|---|---|---|---|---|---|---|",
            f"| {r.model} | {r.n_queries} | {r.exact_match:.4f} | {r.f1:.4f} "
            f"| {i['contains_reference']:.4f} | {cp} | {i['n_without_citations']} "
            f"| {i['no_answer_share']:.4f} |",
            "",
            f"Generators that answered: {i['generators_used']}; provider errors: "
            f"{i['generator_errors']}. Mean retrieve {i['timings_ms']['retrieve_mean']} ms, "
            f"generate {i['timings_ms']['generate_mean']} ms; {r.seconds:.1f} s in all.",
        ]
        if self.warnings:
            lines += ["", "## Warnings", ""] + [f"- {w}" for w in self.warnings]
        return "\n".join(lines) + "\n"


def evaluate_answers(
    runtime: Runtime,
    dataset: BeirDataset,
    generator: Generator | None = None,
    *,
    fallback: Generator | None = None,
    k: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    log_queries: bool = False,
    progress: ProgressFn | None = None,
) -> AnswerRun:
    """Answer the dataset's questions that have reference answers and score the replies.

    ``generator`` defaults to the configured one (``build_generator(settings)``), ``fallback``
    to the extractive generator; ``k`` to ``default_k``. With ``limit`` a sample drawn with
    ``seed`` is asked. Raises ``InvalidInputError`` when the set has no reference answers or
    the data dir holds none of its relevant documents.
    """
    n_answerable = sum(1 for q in dataset.queries.values() if q.answers)
    if n_answerable == 0:
        raise InvalidInputError(
            f"{dataset.name} ({dataset.split}) has no reference answers (queries.jsonl "
            "metadata.answers or metadata.answer); --answers needs a set like SQuAD or Financial QA"
        )
    warnings = check_coverage(runtime, dataset, "--answers")
    settings = runtime.settings
    generator = generator or build_generator(settings)
    fallback = fallback or build_generator(settings, "extractive")
    k = settings.default_k if k is None else k
    log = QueryLog if log_queries else _UnloggedQueries
    answerer = Answerer(runtime, log(runtime.catalog.engine), lambda _name: generator, fallback)
    outcomes: list[QueryOutcome] = []
    citations: list[list[str]] = []
    predictions: list[str] = []

    def answer(question: str) -> tuple[str, list[str]]:
        text, k_used = answerer.validate(question, k)
        outcome = answerer.answer(QueryRequest(text, k_used))
        outcomes.append(outcome)
        by_n = {c.n: c.document_id for c in outcome.sources}
        cited = [by_n[n] for n in outcome.citations if n in by_n]
        citations.append(cited)
        no_answer = "no_answer" in outcome.miss_reasons
        predictions.append("" if no_answer else strip_citations(outcome.answer))
        return predictions[-1], cited

    evaluator = AnswerEvaluator(dataset, answer, limit=limit, seed=seed, progress=progress)
    report = evaluator.evaluate(generator.name)
    n = max(len(outcomes), 1)
    gold_cited = n_cited = n_contains = 0
    rows = zip(report.per_query, outcomes, citations, predictions, strict=True)
    for row, o, cited, prediction in rows:
        gold = dataset.relevant(row["query_id"])
        row["contains_reference"] = contains_reference(
            prediction, dataset.queries[row["query_id"]].answers
        )
        n_contains += row["contains_reference"]
        gold_cited += sum(d in gold for d in cited)
        n_cited += len(cited)
        row |= {
            "cited_documents": cited,
            "question": o.question,
            "answer": o.answer,
            "generator": o.generator,
            "miss_reasons": o.miss_reasons,
        }
    info = {
        "n_answerable": n_answerable,
        "limit": limit,
        "seed": seed if limit is not None and limit < n_answerable else None,
        "k": k,
        "data_dir": str(settings.data_dir),
        "model_version": outcomes[0].model_version if outcomes else None,
        "contains_reference": n_contains / n,
        "n_without_citations": report.n_queries - report.n_with_citations,
        # Every citation weighs the same here; ``citation_precision`` averages per question.
        "citation_precision_pooled": gold_cited / n_cited if n_cited else None,
        "n_citations": n_cited,
        "no_answer_share": sum("no_answer" in o.miss_reasons for o in outcomes) / n,
        "miss_share": sum(o.miss for o in outcomes) / n,
        "generators_used": dict(Counter(o.generator for o in outcomes)),
        "generator_errors": sum(o.generator_error is not None for o in outcomes),
        "timings_ms": {
            f"{part}_{stat}": round(fn([o.timings_ms[part] for o in outcomes] or [0.0]), 2)
            for part in ("retrieve", "generate", "total")
            for stat, fn in (("mean", statistics.fmean), ("median", statistics.median))
        },
        "queries_logged": log_queries,
    }
    return AnswerRun(report, str(dataset.path), info, dataset.warnings + warnings)


def write_answer_outputs(run: AnswerRun, out_dir: Path) -> dict[str, str]:
    """Write ``report.json``, ``report.md`` and ``answers.jsonl`` (one row per question)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {k: out_dir / n for k, n in (("json", "report.json"), ("markdown", "report.md"))}
    files["per_query"] = out_dir / "answers.jsonl"
    files["markdown"].write_text(run.to_markdown(), encoding="utf-8")
    rows = "".join(json.dumps(r) + "\n" for r in run.report.per_query)
    files["per_query"].write_text(rows, encoding="utf-8")
    named = {k: str(v) for k, v in files.items()}
    payload = run.to_dict() | {"files": named}
    files["json"].write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return named

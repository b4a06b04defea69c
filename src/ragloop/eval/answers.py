"""Answer quality for sets with reference answers: exact match, token F1, citation precision.

Exact match and F1 follow the official SQuAD v1.1/v2.0 script: lower-case, strip punctuation
and the articles a/an/the, collapse whitespace, then compare tokens; the best score over the
reference answers counts. Citation precision is the share of cited documents that are gold
documents of the query. ``AnswerEvaluator`` takes any ``answer_fn`` (question -> answer text,
cited document ids), so it does not depend on which generator answers.
"""

from __future__ import annotations

import math
import random
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragloop.core.progress import ProgressFn
from ragloop.eval.datasets import BeirDataset

AnswerFn = Callable[[str], tuple[str, list[str]]]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, references: Iterable[str]) -> float:
    """1.0 when the normalised prediction equals any normalised reference, else 0.0."""
    pred = normalize_answer(prediction)
    return max((1.0 if pred == normalize_answer(r) else 0.0 for r in references), default=0.0)


def _f1(pred_tokens: Sequence[str], ref_tokens: Sequence[str]) -> float:
    if not pred_tokens or not ref_tokens:
        # SQuAD 2.0: an empty answer scores 1 only against an empty reference.
        return float(pred_tokens == ref_tokens)
    common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: Iterable[str]) -> float:
    """Best token-overlap F1 of the prediction against any reference (SQuAD definition)."""
    pred = normalize_answer(prediction).split()
    return max((_f1(pred, normalize_answer(r).split()) for r in references), default=0.0)


def citation_precision(cited: Sequence[str], gold: Iterable[str]) -> float | None:
    """Share of cited documents that are gold; ``None`` when nothing was cited.

    Each citation counts (two chunks of one gold document are two correct citations), so the
    value is the chance that a citation a reader follows leads to a gold document.
    """
    if not cited:
        return None
    gold_set = set(gold)
    return sum(1 for d in cited if d in gold_set) / len(cited)


@dataclass
class AnswerReport:
    """Mean answer quality over the queries that have reference answers."""

    model: str
    dataset: str
    split: str
    n_queries: int
    exact_match: float
    f1: float
    citation_precision: float | None
    n_with_citations: int
    seconds: float
    skipped_without_answers: int = 0
    per_query: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, without the per-query rows."""
        return {
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split,
            "n_queries": self.n_queries,
            "exact_match": self.exact_match,
            "f1": self.f1,
            "citation_precision": self.citation_precision,
            "n_with_citations": self.n_with_citations,
            "skipped_without_answers": self.skipped_without_answers,
            "seconds": round(self.seconds, 3),
        }


class AnswerEvaluator:
    """Asks ``answer_fn`` every query that has reference answers and scores the replies."""

    def __init__(
        self,
        dataset: BeirDataset,
        answer_fn: AnswerFn,
        *,
        limit: int | None = None,
        seed: int | None = None,
        progress: ProgressFn | None = None,
    ) -> None:
        self.dataset = dataset
        self.answer_fn = answer_fn
        self.limit = limit
        self.seed = seed
        self.progress = progress

    def evaluate(self, label: str = "generator") -> AnswerReport:
        """Score every answerable query, in file order.

        With ``limit``, only that many are asked: the first ones, or with ``seed`` a random
        sample drawn by ``random.Random(seed)`` (still asked in file order), so a limited run
        covers the whole set rather than its first articles and is reproducible.
        """
        t0 = time.perf_counter()
        answerable = [q for q in self.dataset.queries.values() if q.answers]
        skipped = len(self.dataset.queries) - len(answerable)
        if self.limit is not None and self.limit < len(answerable):
            if self.seed is None:
                answerable = answerable[: self.limit]
            else:
                keep = sorted(random.Random(self.seed).sample(range(len(answerable)), self.limit))
                answerable = [answerable[i] for i in keep]
        rows: list[dict[str, Any]] = []
        for n, query in enumerate(answerable, start=1):
            answer, cited = self.answer_fn(query.text)
            rows.append(
                {
                    "query_id": query.id,
                    "exact_match": exact_match(answer, query.answers),
                    "f1": token_f1(answer, query.answers),
                    "citation_precision": citation_precision(
                        cited, self.dataset.relevant(query.id)
                    ),
                }
            )
            if self.progress:
                self.progress("answering", n, len(answerable))
        cps = [r["citation_precision"] for r in rows if r["citation_precision"] is not None]
        return AnswerReport(
            model=label,
            dataset=self.dataset.name,
            split=self.dataset.split,
            n_queries=len(rows),
            exact_match=_mean(r["exact_match"] for r in rows),
            f1=_mean(r["f1"] for r in rows),
            citation_precision=_mean(cps) if cps else None,
            n_with_citations=len(cps),
            seconds=time.perf_counter() - t0,
            skipped_without_answers=skipped,
            per_query=rows,
        )


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return math.fsum(items) / len(items) if items else 0.0

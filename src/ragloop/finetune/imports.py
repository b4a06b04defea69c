"""Bulk import of labelled questions: a BEIR split's (question, relevant document) judgements.

An admin who already holds questions with known answers (a support team's resolved tickets, a
benchmark's train split) should not have to replay each one through ``POST /v1/query`` and
``POST /v1/feedback``. Each relevant document resolves to the chunk that matches the question
best under the active model, exactly as feedback that names a document does; the pairs are
stored with source ``import`` and the ``labelled`` retrain source trains on them with feedback.
Nothing is written for a document the store does not hold (or holds no vectors of); the
report counts those as unknown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from ragloop.core.progress import ProgressFn
from ragloop.core.retriever import best_chunk
from ragloop.core.runtime import Runtime
from ragloop.core.storage.querylog import IMPORT_SOURCE, QueryLog
from ragloop.eval.datasets import BeirDataset

#: The progress stage an import reports, per question.
IMPORT_STAGE = "importing questions"


@dataclass
class ImportReport:
    """What an import did: counts, so a re-run (which adds nothing) is visibly a no-op."""

    dataset: str
    split: str
    questions: int = 0
    judgements: int = 0
    pairs_added: int = 0
    already_present: int = 0
    unknown_documents: int = 0
    questions_without_pairs: int = 0
    unknown_examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return asdict(self)


def import_beir_pairs(
    rt: Runtime, log: QueryLog, dataset: BeirDataset, progress: ProgressFn | None = None
) -> ImportReport:
    """Store one (question, best chunk) pair per relevant judgement of ``dataset``'s split.

    Single-chunk documents need no model; for a document with several chunks the question is
    encoded with the active model (in batches) and compared with the document's stored vectors,
    so the chosen chunk is the one the retriever would rank first within that document.
    """
    report = ImportReport(dataset=dataset.name, split=dataset.split)
    judged = {
        qid: sorted(d for d, grade in dataset.qrels[qid].items() if grade > 0)
        for qid in dataset.queries
    }
    if progress:  # the bar shows from the start, before the questions are encoded
        progress(IMPORT_STAGE, 0, len(judged))
    all_docs = sorted({d for docs in judged.values() for d in docs})
    chunks_of = rt.catalog.chunk_ids_of(all_docs)
    unknown = [d for d in all_docs if not chunks_of[d]]
    report.unknown_examples = unknown[:5]
    index = rt.active_index()
    # Encoded in one batched pass, and only for questions naming a document with a choice.
    needs_model = [qid for qid, docs in judged.items() if any(len(chunks_of[d]) > 1 for d in docs)]
    encoded = index.embedder.embed_many(
        [dataset.queries[q].text for q in needs_model], is_query=True
    )
    vectors = dict(zip(needs_model, encoded, strict=True))
    for qid, docs in judged.items():
        question = dataset.queries[qid].text
        vector = partial(vectors.__getitem__, qid)
        added_any = False
        for doc in docs:
            report.judgements += 1
            chunk = best_chunk(rt.store, index.collection, chunks_of[doc], vector)
            if chunk is None:
                report.unknown_documents += 1
                continue
            added_any = True
            if log.add_pair(question, chunk, IMPORT_SOURCE, None):
                report.pairs_added += 1
            else:
                report.already_present += 1
        report.questions += 1
        report.questions_without_pairs += not added_any
        if progress and (report.questions % 200 == 0 or report.questions == len(judged)):
            progress(IMPORT_STAGE, report.questions, len(judged))
    return report

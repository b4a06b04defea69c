"""Bulk import of labelled questions: a BEIR split's (question, relevant document) judgements.

An admin who already holds questions with known answers (a support team's resolved tickets, a
benchmark's train split) should not have to replay each one through ``POST /v1/query`` and
``POST /v1/feedback``. Each relevant document resolves to the chunk that matches the question
best under the active model, exactly as feedback that names a document does; the pairs are
stored with source ``import`` and the ``labelled`` retrain source trains on them with feedback.
Nothing is written for a document the store does not hold; the report counts those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ragloop.core.embedders import Embedder
from ragloop.core.querylog import IMPORT_SOURCE, QueryLog
from ragloop.core.runtime import Runtime
from ragloop.eval.datasets import BeirDataset

#: Questions encoded per batch when a document has several chunks to choose from.
BATCH = 64

ProgressFn = Callable[[int, int], None]


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
    all_docs = sorted({d for docs in judged.values() for d in docs})
    chunks_of = rt.catalog.chunk_ids_of(all_docs)
    unknown = [d for d in all_docs if not chunks_of.get(d)]
    report.unknown_examples = unknown[:5]
    index = rt.active_index()
    needs_model = [qid for qid, docs in judged.items() if any(len(chunks_of[d]) > 1 for d in docs)]
    vectors = _question_vectors(index.embedder, dataset, needs_model)
    done = 0
    for qid, docs in judged.items():
        question = dataset.queries[qid].text
        added_any = False
        for doc in docs:
            report.judgements += 1
            ids = sorted(chunks_of[doc])
            if not ids:
                report.unknown_documents += 1
                continue
            chunk: str | None = ids[0]
            if len(ids) > 1:
                chunk = _best_chunk(rt, index.collection, vectors[qid], ids)
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
        done += 1
        if progress and (done % 200 == 0 or done == len(judged)):
            progress(done, len(judged))
    return report


def _question_vectors(
    embedder: Embedder, dataset: BeirDataset, qids: list[str]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(qids), BATCH):
        part = qids[start : start + BATCH]
        embs = embedder.embed([dataset.queries[q].text for q in part], is_query=True)
        out.update(zip(part, embs, strict=True))
    return out


def _best_chunk(
    rt: Runtime, collection: str, vector: np.ndarray, chunk_ids: list[str]
) -> str | None:
    stored = rt.store.vectors(collection, chunk_ids)
    if not stored:
        return None
    ids = list(stored)
    scores = np.stack([stored[i] for i in ids]) @ np.asarray(vector, dtype=np.float32)
    return ids[int(np.argmax(scores))]

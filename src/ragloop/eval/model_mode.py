"""Model mode: encode a dataset's corpus with an embedder and search it exactly.

This is what the promotion gate calls. The corpus is embedded once, at the model's full width,
and every Matryoshka dimension is scored from prefixes of those vectors. Documents are encoded
as ``title\\ntext`` (``records.embedding_input``), the same input ingest gives a chunk, and are
truncated by the model at its max sequence length as BEIR/MTEB do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ragloop.core.embedding.base import Embedder
from ragloop.core.errors import InvalidInputError
from ragloop.core.progress import ProgressFn
from ragloop.eval.datasets import BeirDataset
from ragloop.eval.metrics import DEFAULT_KS, evaluate_run
from ragloop.eval.report import RetrievalReport
from ragloop.eval.search import ExactIndex, truncate


def evaluate_model(
    embedder: Embedder,
    dataset: BeirDataset,
    *,
    dims: Sequence[int] | None = None,
    batch_size: int = 64,
    ks: Sequence[int] = DEFAULT_KS,
    label: str | None = None,
    progress: ProgressFn | None = None,
) -> RetrievalReport:
    """Score ``embedder`` on ``dataset`` by exact search over its whole corpus.

    ``dims`` lists Matryoshka dimensions to score (default: the model's own); the corpus and
    queries are embedded once and truncated per dimension. Retrieves ``max(ks)`` documents per
    query. Returns a report whose ``by_dim`` maps each dimension to every metric at every k.
    """
    t0 = time.perf_counter()
    wanted = sorted(set(dims or [embedder.dimension]), reverse=True)
    for d in wanted:
        if not 1 <= d <= embedder.dimension:
            raise InvalidInputError(
                f"dimension {d} is outside 1..{embedder.dimension} for {embedder.model_id}"
            )
    doc_ids = list(dataset.corpus)
    doc_vecs = embedder.embed_many(
        [dataset.corpus[d].embedding_input for d in doc_ids],
        is_query=False,
        batch_size=batch_size,
        progress=progress,
        stage="embedding corpus",
    )
    t_corpus = time.perf_counter()
    query_ids = list(dataset.queries)
    query_vecs = embedder.embed_many(
        [dataset.queries[q].text for q in query_ids],
        is_query=True,
        batch_size=batch_size,
        progress=progress,
        stage="embedding queries",
    )
    t_queries = time.perf_counter()
    by_dim: dict[int, dict[str, float]] = {}
    for n, dim in enumerate(wanted, start=1):
        index = ExactIndex(doc_ids, truncate(doc_vecs, dim))
        rankings = index.search(truncate(query_vecs, dim), max(ks))
        run = {q: [d for d, _ in r] for q, r in zip(query_ids, rankings, strict=True)}
        by_dim[dim] = evaluate_run(run, dataset.qrels, ks)
        if progress:
            progress("searching", n, len(wanted))
    t_end = time.perf_counter()
    return RetrievalReport(
        model=label or embedder.model_id,
        model_id=embedder.model_id,
        mode="model",
        dataset=dataset.name,
        split=dataset.split,
        n_queries=len(query_ids),
        n_documents=len(doc_ids),
        dimension=embedder.dimension,
        by_dim=by_dim,
        seconds={
            "embed_corpus": t_corpus - t0,
            "embed_queries": t_queries - t_corpus,
            "search_and_score": t_end - t_queries,
            "total": t_end - t0,
        },
        info={
            "max_seq_length": embedder.max_seq_length,
            "bf16": getattr(embedder, "use_bf16", None),
            "batch_size": batch_size,
            "search": "exact (dot product of unit vectors)",
        },
    )

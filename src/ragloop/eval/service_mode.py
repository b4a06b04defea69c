"""Service mode: run the dataset's queries through the live retriever over what was ingested.

The retriever returns chunks; a document's score is its best chunk's, so ``MAX_K`` chunks are
fetched to leave enough distinct documents for the cut-offs. Ingesting a BEIR ``corpus.jsonl``
keeps the corpus ``_id`` as the document id, which is what the qrels name.

The live Chroma collection holds full-width vectors only, so a smaller Matryoshka dimension is
scored by exact search over the catalog's chunks re-embedded with the same model (the index a
truncated deployment would build); the report says which index each dimension used.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from ragloop.core.errors import InvalidInputError
from ragloop.core.fusion import RetrievalMode
from ragloop.core.progress import ProgressFn
from ragloop.core.records import ChunkRecord
from ragloop.core.retriever import MAX_K, search
from ragloop.core.runtime import ActiveIndex, Runtime
from ragloop.eval.datasets import BeirDataset
from ragloop.eval.metrics import DEFAULT_KS, evaluate_run
from ragloop.eval.report import RetrievalReport
from ragloop.eval.search import ExactIndex, best_per_document, truncate

_LIVE = {
    "dense": "live retriever (Chroma HNSW)",
    "lexical": "live retriever (FTS5 BM25)",
    "hybrid": "live retriever (Chroma HNSW + FTS5 BM25, fused)",
}


def index_for(runtime: Runtime, version: str | None) -> ActiveIndex:
    """The index to query: the active one, or a stored model version that has vectors."""
    if version in (None, "active"):
        return runtime.active_index()
    mv = runtime.catalog.get_version(str(version))
    if runtime.store.count(mv.collection) == 0:
        raise InvalidInputError(
            f"model version {mv.version!r} has no vectors in {mv.collection}; "
            "service mode needs a version whose collection was built"
        )
    # Loaded as the service loads it: query adapter, fusion recipe and all.
    return runtime.index_for(mv)


def check_coverage(
    runtime: Runtime, dataset: BeirDataset, purpose: str = "service mode"
) -> list[str]:
    """Refuse an empty data dir or one holding none of the relevant documents; else warnings.

    ``purpose`` names the caller in the message (``service mode``, ``--answers``).
    """
    if runtime.catalog.counts()["chunks"] == 0:
        raise InvalidInputError(
            f"nothing is ingested in {runtime.settings.data_dir}; {purpose} searches what "
            f"was ingested: ragloop ingest {dataset.path / 'corpus.jsonl'} first"
        )
    wanted = sorted({d for q in dataset.queries for d in dataset.relevant(q)})
    present = runtime.catalog.documents_by_ids(wanted)
    if not present:
        raise InvalidInputError(
            f"none of the {len(wanted)} relevant documents of {dataset.name} ({dataset.split}) "
            f"is ingested in {runtime.settings.data_dir} (document ids must be the corpus _ids: "
            f"ragloop ingest {dataset.path / 'corpus.jsonl'})"
        )
    if len(present) < len(wanted):
        return [
            f"{len(wanted) - len(present)} of {len(wanted)} relevant documents are not "
            "ingested; they count as never retrieved"
        ]
    return []


def _all_chunks(runtime: Runtime) -> list[ChunkRecord]:
    return [c for batch in runtime.catalog.iter_chunks() for c in batch]


def evaluate_service(
    runtime: Runtime,
    dataset: BeirDataset,
    *,
    version: str | None = None,
    dims: Sequence[int] | None = None,
    k_chunks: int = MAX_K,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 64,
    label: str | None = None,
    progress: ProgressFn | None = None,
    retrieval: RetrievalMode | None = None,
) -> RetrievalReport:
    """Score the service's retrieval (``core.retriever.search``) on ``dataset``'s queries.

    ``version`` is ``None``/``"active"`` or a stored model version id. The full dimension goes
    through the live retriever (Chroma); each smaller entry of ``dims`` is scored by exact
    search over the ingested chunks re-embedded with the same model and truncated (dense
    retrieval only). ``retrieval`` is dense, lexical or hybrid (default: the index's,
    ``RAGLOOP_RETRIEVAL``); hybrid fuses with the version's own recipe.
    """
    t0 = time.perf_counter()
    warnings = check_coverage(runtime, dataset)
    index = index_for(runtime, version)
    retrieval = retrieval or index.retrieval
    full = index.embedder.dimension
    wanted = sorted(set(dims or [full]), reverse=True)
    if any(not 1 <= d <= full for d in wanted):
        raise InvalidInputError(f"--dims must lie in 1..{full} for {index.version.model_ref}")
    if retrieval != "dense":
        wanted = [full]  # truncated dimensions are exact dense search: no lexical side
    query_ids = list(dataset.queries)
    depth = max(ks)
    by_dim: dict[int, dict[str, float]] = {}
    docs_ranked: list[int] = []
    if full in wanted:
        run: dict[str, list[str]] = {}
        for n, qid in enumerate(query_ids, start=1):
            hits = search(
                index,
                runtime.store,
                runtime.catalog,
                dataset.queries[qid].text,
                k_chunks,
                mode=retrieval,
            )
            ranking = best_per_document((h.chunk.document_id, h.score) for h in hits)
            run[qid] = [d for d, _ in ranking[:depth]]
            docs_ranked.append(len(ranking))
            if progress:
                progress("querying the retriever", n, len(query_ids))
        by_dim[full] = evaluate_run(run, dataset.qrels, ks)
    t_live = time.perf_counter()
    smaller = [d for d in wanted if d != full]
    if smaller:
        chunks = _all_chunks(runtime)
        chunk_vecs = index.embedder.embed_many(
            [c.embedding_input for c in chunks],
            is_query=False,
            batch_size=batch_size,
            progress=progress,
            stage="re-embedding chunks",
        )
        query_vecs = index.embedder.embed_many(
            [dataset.queries[q].text for q in query_ids],
            is_query=True,
            batch_size=batch_size,
            progress=progress,
            stage="embedding queries",
        )
        owner = {c.id: c.document_id for c in chunks}
        for dim in smaller:
            exact = ExactIndex([c.id for c in chunks], truncate(chunk_vecs, dim))
            results = exact.search(truncate(query_vecs, dim), k_chunks)
            run = {
                q: [d for d, _ in best_per_document((owner[c], s) for c, s in hits)[:depth]]
                for q, hits in zip(query_ids, results, strict=True)
            }
            by_dim[dim] = evaluate_run(run, dataset.qrels, ks)
    t_end = time.perf_counter()
    counts = runtime.catalog.counts()
    info: dict[str, object] = {
        "data_dir": str(runtime.settings.data_dir),
        "version": index.version.version,
        "collection": index.collection,
        "chunks": counts["chunks"],
        "k_chunks": k_chunks,
        "retrieval": retrieval,
        "fusion": index.fusion.to_dict() if retrieval == "hybrid" else None,
        "index_by_dim": {
            str(d): _LIVE[retrieval] if d == full else "exact, re-embedded chunks" for d in wanted
        },
        "bf16": getattr(index.embedder, "use_bf16", None),
        "warnings": warnings,
    }
    if docs_ranked:
        info["documents_per_query"] = {
            "min": min(docs_ranked),
            "median": statistics.median(docs_ranked),
            "below_10": sum(1 for n in docs_ranked if n < 10),
        }
    return RetrievalReport(
        model=label or (version or "active"),
        model_id=index.version.model_ref,
        mode="service",
        dataset=dataset.name,
        split=dataset.split,
        n_queries=len(query_ids),
        n_documents=counts["documents"],
        dimension=full,
        by_dim=by_dim,
        seconds={"live": t_live - t0, "truncated": t_end - t_live, "total": t_end - t0},
        info=info,
        retrieval=retrieval,
    )

"""The LangChain peer: the ingest pipeline a LangChain user would write, run as its own process.

Usage:
  python -m benchmarks.langchain_peer ingest CORPUS.jsonl --persist-dir DIR [--precision bf16]
  python -m benchmarks.langchain_peer index CORPUS.jsonl --persist-dir DIR --records FILE

``ingest`` is the issue's pipeline: ``RecursiveCharacterTextSplitter(chunk_size=1000,
chunk_overlap=200)`` + ``HuggingFaceEmbeddings`` on the bundled all-MiniLM-L6-v2 +
``Chroma.from_documents`` persisted to DIR. ``index`` is LangChain's own answer to re-ingest,
the indexing API (``langchain_core.indexing.index`` with ``cleanup="incremental"``), which
skips chunks whose hash it has recorded; its record manager is LangChain's
``InMemoryRecordManager`` saved to FILE between runs (the SQL one lives in langchain-community,
which we do not install), so each run is a fresh process like a re-run script.

Each document is ``title + "\\n" + text`` with its id in the metadata: the same text ragloop
embeds. Both sides get the precision ragloop uses on this CPU (``--precision``): bf16 is
applied as torch's CPU autocast around the pipeline, the same mechanism ragloop's embedder uses.
Prints one JSON object with counts and phase timings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from langchain_core.embeddings import Embeddings  # noqa: E402  (after the offline switch)


class _TimedEmbeddings(Embeddings):
    """Delegates to an Embeddings object and adds up the seconds spent embedding.

    Only for the phase breakdown: ``from_documents`` embeds and writes in one call.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.texts = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        t0 = time.perf_counter()
        out: list[list[float]] = self.inner.embed_documents(texts)
        self.seconds += time.perf_counter() - t0
        self.texts += len(texts)
        return out

    def embed_query(self, text: str) -> list[float]:
        out: list[float] = self.inner.embed_query(text)
        return out


def _precision_ctx(precision: str) -> contextlib.AbstractContextManager[Any]:
    import torch

    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _documents(corpus: Path) -> list[Any]:
    from langchain_core.documents import Document

    from ragloop.eval.datasets import load_corpus

    return [
        Document(
            page_content=doc.embedding_input,
            metadata={"doc_id": doc.id, "title": doc.title, "source": str(corpus)},
        )
        for doc in load_corpus(corpus).values()
    ]


def _embeddings() -> Any:
    from langchain_huggingface import HuggingFaceEmbeddings

    from ragloop.core.embedding.torch_embedder import bundled_model_path

    return HuggingFaceEmbeddings(
        model_name=str(bundled_model_path()),
        model_kwargs={"device": "cpu"},
        # Unit vectors, as ragloop stores; the cost is one division per vector.
        encode_kwargs={"normalize_embeddings": True},
    )


def _split(docs: list[Any]) -> list[Any]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    chunks: list[Any] = splitter.split_documents(docs)
    return chunks


@contextlib.contextmanager
def _phase(phases: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    phases[name] = round(time.perf_counter() - t0, 3)


def run_ingest(corpus: Path, persist_dir: Path, precision: str) -> dict[str, Any]:
    """The plain pipeline: split, embed, ``Chroma.from_documents`` persisted to disk."""
    phases: dict[str, float] = {}
    with _phase(phases, "imports"):
        from langchain_chroma import Chroma
    with _phase(phases, "load"):
        docs = _documents(corpus)
    with _phase(phases, "split"):
        chunks = _split(docs)
    with _phase(phases, "model_load"):
        emb = _TimedEmbeddings(_embeddings())
    with _phase(phases, "embed_and_store"), _precision_ctx(precision):
        Chroma.from_documents(
            chunks, emb, collection_name="langchain", persist_directory=str(persist_dir)
        )
    phases["embed"] = round(emb.seconds, 3)
    return {
        "documents": len(docs),
        "chunks": len(chunks),
        "chunks_embedded": emb.texts,
        "precision": precision,
        "phases": phases,
        "in_process_seconds": round(time.perf_counter() - STARTED, 3),
    }


def run_index(corpus: Path, persist_dir: Path, records: Path, precision: str) -> dict[str, Any]:
    """LangChain's incremental re-ingest: the indexing API over a persisted record manager."""
    phases: dict[str, float] = {}
    with _phase(phases, "imports"):
        from langchain_chroma import Chroma
        from langchain_core.indexing import InMemoryRecordManager, index
    with _phase(phases, "load"):
        docs = _documents(corpus)
    with _phase(phases, "split"):
        chunks = _split(docs)
    with _phase(phases, "model_load"):
        emb = _TimedEmbeddings(_embeddings())
    manager = InMemoryRecordManager(namespace="chroma/langchain")
    if records.exists():
        manager.records = json.loads(records.read_text())
    store = Chroma(
        collection_name="langchain", embedding_function=emb, persist_directory=str(persist_dir)
    )
    with _phase(phases, "index"), _precision_ctx(precision):
        result = index(
            chunks,
            manager,
            store,
            cleanup="incremental",
            source_id_key="doc_id",
            key_encoder="sha256",  # ragloop hashes with SHA-256 too
        )
    records.write_text(json.dumps(manager.records))
    phases["embed"] = round(emb.seconds, 3)
    return {
        "documents": len(docs),
        "chunks": len(chunks),
        "chunks_embedded": emb.texts,
        "precision": precision,
        "result": dict(result),
        "phases": phases,
        "in_process_seconds": round(time.perf_counter() - STARTED, 3),
    }


def main() -> None:
    """Run one pipeline and print its JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("mode", choices=["ingest", "index"])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--persist-dir", type=Path, required=True)
    ap.add_argument("--records", type=Path, help="record manager file (index mode)")
    ap.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    args = ap.parse_args()
    if args.mode == "ingest":
        out = run_ingest(args.corpus, args.persist_dir, args.precision)
    else:
        if args.records is None:
            raise SystemExit("index mode needs --records FILE")
        out = run_index(args.corpus, args.persist_dir, args.records, args.precision)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

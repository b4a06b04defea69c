"""HNSW recall of Chroma against exact search, on SciFact, for several search depths.

Usage:
  python -m benchmarks.hnsw_recall --data-dir DIR
      [--queries ../shared/data/scifact/queries.jsonl]

DIR must hold an ingested SciFact (``ragloop ingest ../shared/data/scifact/corpus.jsonl``). The
vectors are read back from the active collection and loaded into fresh in-memory collections
built with each parameter set, so only the HNSW settings differ.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ragloop.core.runtime import open_runtime
from ragloop.core.settings import load_settings

CONFIGS = [
    ("chroma default (M 16, ef_c 100, ef_s 100)", 16, 100, 100),
    ("M 16, ef_c 200, ef_s 128", 16, 200, 128),
    ("ragloop (M 32, ef_c 200, ef_s 128)", 32, 200, 128),
    ("M 32, ef_c 200, ef_s 256", 32, 200, 256),
]


def main() -> None:
    """Print recall@10 and mean query latency per configuration."""
    import chromadb

    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--queries", type=Path, default=Path("../shared/data/scifact/queries.jsonl"))
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()

    rt = open_runtime(load_settings(data_dir=args.data_dir))
    index = rt.active_index()
    coll = rt.store.client.get_collection(index.collection)  # type: ignore[attr-defined]
    got = coll.get(include=["embeddings"], limit=1_000_000)
    ids, vecs = got["ids"], np.asarray(got["embeddings"], dtype=np.float32)
    questions = [json.loads(line)["text"] for line in args.queries.read_text().splitlines()]
    qv = index.embedder.embed([q for q in questions], is_query=True)
    exact = np.argsort(-(qv @ vecs.T), axis=1)[:, : args.k]
    print(f"{len(ids)} vectors, {len(questions)} queries, k={args.k}")
    client = chromadb.EphemeralClient()
    for label, m, ef_c, ef_s in CONFIGS:
        name = f"bench-{m}-{ef_c}-{ef_s}"
        c = client.create_collection(
            name,
            embedding_function=None,
            configuration={
                "hnsw": {
                    "space": "cosine",
                    "max_neighbors": m,
                    "ef_construction": ef_c,
                    "ef_search": ef_s,
                }
            },
        )
        for i in range(0, len(ids), 5000):
            c.add(ids=ids[i : i + 5000], embeddings=vecs[i : i + 5000])
        hits, started = 0, time.perf_counter()
        for n, q in enumerate(qv):
            found = c.query(query_embeddings=[q], n_results=args.k)["ids"][0]
            hits += len({ids[j] for j in exact[n]} & set(found))
        ms = (time.perf_counter() - started) / len(qv) * 1000
        print(f"{label:45s} recall@{args.k} {hits / (len(qv) * args.k):.4f}  {ms:.2f} ms/query")
        client.delete_collection(name)
    rt.close()


if __name__ == "__main__":
    main()

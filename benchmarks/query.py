"""Query latency: ``/api/search`` and ``/v1/query`` over loopback HTTP against the in-process
floor (the same retrieval without HTTP: encode + Chroma query, plus the BM25 query and the
fusion when hybrid), at 1 and 8 concurrent clients, with >= 100k chunks.

Usage:
  python -m benchmarks.query [--work-dir /tmp/ragloop-bench] [--seconds 20] [--rounds 3]
      [--chunk-tokens 24 --chunk-overlap 4] [--min-chunks 100000] [--quick] [--json PATH]
  python -m benchmarks.query --estimate [--chunk-tokens 24 --chunk-overlap 4]

The store is built once and kept under ``WORK_DIR/query-<chunk-tokens>-<overlap>``: SciFact,
Financial QA and SQuAD ingested by ``ragloop ingest`` with small chunks
(``RAGLOOP_CHUNK_TOKENS``), because the three corpora hold about 2.2M tokens and 100k chunks of
the default 256 tokens would need ten times the text. Every chunk is a real slice of a real
document with its real vector; ``--estimate`` chunks a sample to predict the count first.

Every row runs for ``--seconds`` in all, split over ``--rounds`` alternating rounds: a fresh
server and its HTTP rows, then the in-process floor rows, then again; each side gets 6 s of
dropped load at 8 clients at the start of each of its rounds. Rows pool their latencies over
the rounds, and the goal's ratio is also printed round by round. Every row sends the SciFact,
Financial QA and SQuAD questions in turn, the same questions in the same order (the server runs
with its query cache off, so no row is served from an earlier row's cache).
``/api/search`` without ``chunks`` uses ``RAGLOOP_DEFAULT_K`` (5), and ``/v1/query`` is sent
``k=5``, so the floor queries k=5 too. The floor uses the server's own embedder (the active
version, loaded from the same data dir) and the same Chroma collection with
``include=["distances"]``, from 1 and 8 threads, each query encoded alone. It retrieves in the
server's mode (``RAGLOOP_RETRIEVAL``, hybrid by default): hybrid also queries the catalog's
FTS5 index and fuses both sides at the version's fusion depth, as ``core.retriever.search``
does, so only the catalog join of the hits is left out; a second 8-thread
floor row encodes through the same query batching the server uses (``QueryBatcher``), so the
HTTP overhead can be read apart from batching. HTTP clients are keep-alive ``http.client``
connections, one per thread. The floor's runtime stays open in this process while a server
process reads the same store; the two never run load at the same time.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import (
    DEFAULT_WORK_DIR,
    backend_choice,
    bench_env,
    corpus_file,
    embedder_info,
    ingest_store,
    load_questions,
    print_table,
    ratio,
    reused_store,
    write_json,
)
from benchmarks.query_load import Call, QuestionFeed, Samples, drive, http_call, start_server

K = 5
#: Seconds of dropped load at 8 clients before each side's timed rows (both sides alike): a
#: fresh process's first seconds (first kernels, allocator growth) are not steady state.
WARM_UP_S = 6.0
FLOOR = "floor: encode + Chroma"
FLOOR_BATCHED = "floor, batched: encode + Chroma"
CORPORA = ("scifact", "fqa", "squad")
QUICK_DOCS = 100


# --- the store ----------------------------------------------------------------------------


def chunk_env(chunk_tokens: int, overlap: int) -> dict[str, str]:
    """Settings for the small-chunk store (ingest and serve both get them)."""
    return {"RAGLOOP_CHUNK_TOKENS": str(chunk_tokens), "RAGLOOP_CHUNK_OVERLAP": str(overlap)}


def estimate_chunks(chunk_tokens: int, overlap: int, every: int = 25) -> dict[str, int]:
    """Chunks per corpus predicted from every ``every``-th document, chunked as ingest would."""
    from ragloop.core.embedding.base import EmbedderOptions
    from ragloop.core.embedding.registry import default_registry
    from ragloop.eval.datasets import load_corpus
    from ragloop.ingest.chunking import Chunker, ChunkerConfig

    # Only the tokenizer is used; torch fp32 avoids any backend measuring or export.
    emb = default_registry().load("all-MiniLM-L6-v2", EmbedderOptions(precision="fp32"))
    chunker = Chunker(emb, ChunkerConfig(chunk_tokens, overlap))
    out: dict[str, int] = {}
    for name in CORPORA:
        docs = list(load_corpus(corpus_file(name)).values())
        sample = docs[::every]
        n = sum(len(chunker.split(d.id, d.title, d.text, "beir")) for d in sample)
        out[name] = round(n * len(docs) / len(sample))
    out["total"] = sum(out.values())
    return out


def _subset(name: str, dest: Path, limit: int) -> Path:
    from ragloop.eval.datasets import load_corpus

    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", encoding="utf-8") as fh:
        for d in list(load_corpus(corpus_file(name)).values())[:limit]:
            fh.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    return dest


def build_store(
    work: Path, chunk_tokens: int, overlap: int, min_chunks: int, docs: int | None
) -> tuple[Path, dict[str, Any]]:
    """The data dir (built on first use, then reused) and its build record.

    Re-running ``ragloop ingest`` on a complete store costs seconds (every document is
    unchanged), so a half-built store from an interrupted run is simply finished.
    """
    quick = docs is not None  # a subset: for smoke runs only
    name = f"query-{chunk_tokens}-{overlap}" + (f"-first{docs}" if quick else "")
    data_dir = work / name
    marker = data_dir / "bench-build.json"
    reused = reused_store(data_dir)
    if reused is not None:
        return data_dir, reused
    if docs is not None:
        subsets = work / f"query-corpora-first{docs}"
        files = [_subset(c, subsets / f"{c}.jsonl", docs) for c in CORPORA]
    else:
        files = [corpus_file(c) for c in CORPORA]
    print(f"store: building {data_dir} from {len(files)} corpora ...", flush=True)
    t, status = ingest_store(files, data_dir, env=chunk_env(chunk_tokens, overlap))
    rec: dict[str, Any] = {
        "chunk_tokens": chunk_tokens,
        "chunk_overlap": overlap,
        "documents": status["documents"],
        "chunks": status["chunks"],
        "vectors": status["vectors"],
        "ingest_wall_s": round(t.seconds, 1),
        "ingest_report": t.output,
    }
    print(
        f"store: {rec['documents']:,} documents, {rec['chunks']:,} chunks, "
        f"{rec['vectors']:,} vectors, built in {rec['ingest_wall_s']} s",
        flush=True,
    )
    if rec["vectors"] != rec["chunks"]:
        raise RuntimeError(f"store is incomplete: {rec['chunks']} chunks, {rec['vectors']} vectors")
    if not quick and rec["chunks"] < min_chunks:
        raise SystemExit(
            f"only {rec['chunks']:,} chunks (< {min_chunks:,}): use a smaller --chunk-tokens "
            f"(see --estimate); {data_dir} is left for inspection"
        )
    marker.write_text(json.dumps(rec, indent=2))
    return data_dir, rec


def questions_mix() -> list[str]:
    """Every distinct question of the three corpora, interleaved, so each run sees all kinds."""
    lists = [load_questions(c) for c in CORPORA]
    seen: set[str] = set()
    out: list[str] = []
    for i in range(max(len(x) for x in lists)):
        for lst in lists:
            if i < len(lst) and lst[i] not in seen:
                seen.add(lst[i])
                out.append(lst[i])
    return out


#: HTTP and floor rows alternate in this many rounds, and each row pools its latencies over
#: them: this machine's speed drifts over minutes, and with every HTTP row first and every floor
#: row last, one side could run fast and the other slow (single runs gave 1.26x-4.99x).
ROUNDS = 3
ROWS = (
    *((f"HTTP {route}", c) for route in ("/api/search", "/v1/query") for c in (1, 8)),
    (FLOOR, 1),
    (FLOOR, 8),
    (FLOOR_BATCHED, 8),
)


class Rows:
    """Latency samples per (side, clients) row, pooled over rounds, each row with its own
    question feed (so every row sends the same questions in the same order)."""

    def __init__(self, questions: list[str]) -> None:
        self.warm = questions[-200:]  # each side's dropped warm-up: what the rows reach last
        self.feeds = {row: QuestionFeed(questions) for row in ROWS}
        self.samples: dict[tuple[str, int], Samples] = {row: Samples() for row in ROWS}
        self.rounds: list[dict[tuple[str, int], float]] = []

    def run(self, row: tuple[str, int], make_call: Any, seconds: float) -> None:
        """Drive ``row`` for ``seconds``, adding to its samples and this round's p99s."""
        side, clients = row
        print(f"  {side}, {clients} clients ...", flush=True)
        r = drive(make_call, self.feeds[row], clients, seconds, samples=self.samples[row])
        self.rounds[-1][row] = r["p99_ms"] or 0.0

    def summary(self) -> list[dict[str, Any]]:
        """One pooled summary per row, in ``ROWS`` order."""
        return [
            {"side": side, "clients": c}
            | self.samples[(side, c)].summary(c)
            | {"questions_repeated": self.feeds[(side, c)].wrapped}
            for side, c in ROWS
        ]


def http_round(rows: Rows, data_dir: Path, env: dict[str, str], seconds: float) -> None:
    """Start ``ragloop serve`` over the store, warm it up, drive both routes at 1 and 8."""
    proc, url = start_server(data_dir, bench_env(env | {"RAGLOOP_QUERY_CACHE_SIZE": "0"}))
    try:
        for route in ("/api/search", "/v1/query"):
            drive(http_call(url, route, K), rows.warm, 8, min(WARM_UP_S, seconds))
            for clients in (1, 8):
                rows.run((f"HTTP {route}", clients), http_call(url, route, K), seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


class Floor:
    """encode + Chroma query in this process, on the server's index and embedder.

    Open for the whole run: the server runs in its own process between floor rounds and only
    reads the same store.
    """

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        from ragloop.core.runtime import open_runtime
        from ragloop.core.settings import load_settings

        settings = load_settings(
            data_dir=data_dir,
            chunk_tokens=int(env["RAGLOOP_CHUNK_TOKENS"]),
            chunk_overlap=int(env["RAGLOOP_CHUNK_OVERLAP"]),
        )
        self.rt = open_runtime(settings)
        index = self.rt.active_index()
        self.coll = self.rt.store.client.get_collection(index.collection)  # type: ignore[attr-defined]
        self.embedder = index.embedder
        # The retrieval the server runs (RAGLOOP_RETRIEVAL reaches both processes alike).
        self.lexical = self.rt.catalog.lexical
        self.mode = index.retrieval if self.lexical is not None else "dense"
        self.fusion, self.collection = index.fusion, index.collection
        # The runtime's own batcher, as the server uses it; no query cache on this side either
        # (the embedder or the batcher is called directly).
        assert index.batcher is not None
        self.batcher = index.batcher

    def _calls(self, encode: Callable[[str], Any]) -> Callable[[], tuple[Call, Callable[[], None]]]:
        from ragloop.core.fusion import fuse

        def make() -> tuple[Call, Callable[[], None]]:
            def call(q: str) -> None:
                vec = encode(q)  # every mode encodes: hits carry their dense cosine
                if self.mode == "dense":
                    self.coll.query(query_embeddings=[vec], n_results=K, include=["distances"])
                elif self.mode == "lexical":
                    self.lexical.search(q, K)  # type: ignore[union-attr]
                else:  # hybrid: both sides at the fusion depth, then fused
                    depth = max(K, self.fusion.depth)
                    dense = self.rt.store.query(self.collection, vec, depth)
                    fuse(self.fusion, dense, self.lexical.search(q, depth))  # type: ignore[union-attr]

            return call, lambda: None

        return make

    def round(self, rows: Rows, seconds: float) -> None:
        """Warm up, then the floor at 1 and 8 threads and the batched floor at 8."""
        alone, batched = (
            self._calls(self.embedder.embed_query),
            self._calls(self.batcher.embed_query),
        )
        drive(alone, rows.warm, 8, min(WARM_UP_S, seconds))
        drive(batched, rows.warm, 8, min(WARM_UP_S, seconds))
        rows.run((FLOOR, 1), alone, seconds)
        rows.run((FLOOR, 8), alone, seconds)
        # The floor as the issue defines it encodes each query alone; the server coalesces
        # concurrent queries (QueryBatcher). This row gives the floor the same batching, so
        # the HTTP overhead can be read on its own too.
        rows.run((FLOOR_BATCHED, 8), batched, seconds)

    def close(self) -> None:
        """Close the runtime."""
        self.rt.close()


def run(
    work: Path,
    seconds: float,
    chunk_tokens: int,
    overlap: int,
    min_chunks: int,
    quick: bool,
    docs: int | None = None,
    rounds: int = ROUNDS,
) -> dict[str, Any]:
    """Build or reuse the store, then ``rounds`` of HTTP rows and floor rows; the JSON record."""
    env = chunk_env(chunk_tokens, overlap)
    limit = docs or (QUICK_DOCS if quick else None)
    data_dir, build = build_store(work, chunk_tokens, overlap, min_chunks, limit)
    rows = Rows(questions_mix())
    floor = Floor(data_dir, env)
    print(f"retrieval: {floor.mode} (the server and the floor)", flush=True)
    try:
        for n in range(rounds):
            print(f"round {n + 1} of {rounds}", flush=True)
            rows.rounds.append({})
            http_round(rows, data_dir, env, seconds / rounds)
            floor.round(rows, seconds / rounds)
        info = embedder_info(floor.embedder)
    finally:
        floor.close()
    table = rows.summary()
    print_table(
        f"query, k={K}, {build['chunks']:,} chunks stored ({chunk_tokens}-token chunks), "
        f"{seconds:g} s per row over {rounds} alternating rounds; "
        f"embedder {info['backend']} {info['precision']}; retrieval {floor.mode}",
        table,
        ["side", "clients", "requests", "errors", "p50_ms", "p99_ms", "rps"],
    )

    def p99(side: str, clients: int) -> float:
        return next(
            r["p99_ms"] or 0.0 for r in table if (r["side"], r["clients"]) == (side, clients)
        )

    ratios = {
        f"{route}_p99_over_floor_{c}": ratio(p99(f"HTTP {route}", c), p99(FLOOR, c))
        for route in ("/api/search", "/v1/query")
        for c in (1, 8)
    } | {
        f"{route}_p99_over_batched_floor_8": ratio(p99(f"HTTP {route}", 8), p99(FLOOR_BATCHED, 8))
        for route in ("/api/search", "/v1/query")
    }
    goal_row, floor_row = ("HTTP /api/search", 8), (FLOOR, 8)
    per_round = [ratio(r[goal_row], r[floor_row]) for r in rows.rounds]
    for key, value in ratios.items():
        goal = " (goal <= 1.3x)" if key == "/api/search_p99_over_floor_8" else ""
        print(f"ratio {key}: {value}x{goal}")
    print(f"  the same ratio round by round: {', '.join(f'{r}x' for r in per_round)}")
    for r in table:
        if r["errors"]:
            print(
                f"errors on {r['side']} x{r['clients']}: {r['errors']}, first: {r['first_error']}"
            )
    return {
        "benchmark": "query",
        "quick": quick,
        "k": K,
        "rounds": rounds,
        "store": {k: v for k, v in build.items() if k != "ingest_report"},
        "data_dir": str(data_dir),
        "embedder": info | {"choice": backend_choice(data_dir)},
        "retrieval": floor.mode,
        "rows": table,
        "ratios": ratios,
        "goal_ratio_by_round": per_round,
    }


def main() -> None:
    """Parse arguments, print the machine, run, optionally write JSON."""
    from benchmarks.machine import machine_record, print_machine

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    ap.add_argument("--seconds", type=float, default=20.0, help="per row, over all rounds")
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="alternating HTTP/floor rounds")
    ap.add_argument("--chunk-tokens", type=int, default=24)
    ap.add_argument("--chunk-overlap", type=int, default=4)
    ap.add_argument("--min-chunks", type=int, default=100_000)
    ap.add_argument("--estimate", action="store_true", help="predict the chunk count and stop")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_DOCS} docs per corpus, 4 s rows")
    ap.add_argument("--docs", type=int, help="first N documents per corpus (smoke tests)")
    ap.add_argument("--json", type=Path, help="write the JSON record here")
    args = ap.parse_args()
    if args.estimate:
        print(json.dumps(estimate_chunks(args.chunk_tokens, args.chunk_overlap), indent=2))
        return
    machine = machine_record(0.5 if args.quick else 2.0)
    print_machine(machine)
    seconds = 4.0 if args.quick else args.seconds
    record = run(
        args.work_dir,
        seconds,
        args.chunk_tokens,
        args.chunk_overlap,
        args.min_chunks,
        args.quick,
        args.docs,
        1 if args.quick else args.rounds,
    )
    write_json(args.json, {"machine": machine} | record)


if __name__ == "__main__":
    main()

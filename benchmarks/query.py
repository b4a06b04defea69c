"""Query latency: ``/api/search`` and ``/v1/query`` over loopback HTTP against the in-process
floor (encode + Chroma query, no HTTP), at 1 and 8 concurrent clients, with >= 100k chunks.

Usage:
  python -m benchmarks.query [--work-dir /tmp/ragloop-bench] [--seconds 20]
      [--chunk-tokens 24 --chunk-overlap 4] [--min-chunks 100000] [--quick] [--json PATH]
  python -m benchmarks.query --estimate [--chunk-tokens 24 --chunk-overlap 4]

The store is built once and kept under ``WORK_DIR/query-<chunk-tokens>-<overlap>``: SciFact,
Financial QA and SQuAD ingested by ``ragloop ingest`` with small chunks
(``RAGLOOP_CHUNK_TOKENS``), because the three corpora hold about 2.2M tokens and 100k chunks of
the default 256 tokens would need ten times the text. Every chunk is a real slice of a real
document with its real vector; ``--estimate`` chunks a sample to predict the count first.

Each side runs for ``--seconds`` per concurrency after 6 s of dropped load at 8 clients,
sending the SciFact, Financial QA and SQuAD questions in turn, the same questions in the same
order in every row
(the server runs with its query cache off, so no row is served from an earlier row's cache).
``/api/search`` without ``chunks`` uses ``RAGLOOP_DEFAULT_K`` (5), and ``/v1/query`` is sent
``k=5``, so the floor queries k=5 too. The floor uses the server's own embedder (the active
version, loaded from the same data dir) and the same Chroma collection with
``include=["distances"]``, from 1 and 8 threads, each query encoded alone; a second 8-thread
floor row encodes through the same query batching the server uses (``QueryBatcher``), so the
HTTP overhead can be read apart from batching. HTTP clients are keep-alive ``http.client``
connections, one per thread. The server and the floor run one after the other: embedded
Chroma belongs to one process.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import (
    DEFAULT_WORK_DIR,
    INGEST_OK_CODES,
    backend_choice,
    bench_env,
    corpus_file,
    embedder_info,
    latency_summary,
    load_questions,
    only_blank_failures,
    print_table,
    python_module,
    ratio,
    run_json,
    write_json,
)

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
    from ragloop.core.embedders import EmbedderOptions, default_registry
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
    if marker.exists():
        rec: dict[str, Any] = json.loads(marker.read_text())
        print(f"store: reusing {data_dir} ({rec['chunks']:,} chunks)", flush=True)
        return data_dir, rec
    if docs is not None:
        subsets = work / f"query-corpora-first{docs}"
        files = [_subset(c, subsets / f"{c}.jsonl", docs) for c in CORPORA]
    else:
        files = [corpus_file(c) for c in CORPORA]
    print(f"store: building {data_dir} from {len(files)} corpora ...", flush=True)
    argv = python_module("ragloop.service.cli", "ingest", *map(str, files), "--data-dir")
    t = run_json(
        [*argv, str(data_dir), "--json"],
        env=chunk_env(chunk_tokens, overlap),
        ok_codes=INGEST_OK_CODES,
    )
    if not only_blank_failures(t.output):
        raise RuntimeError(f"ragloop ingest reported failures: {t.output['failed'][:3]}")
    status = run_json(
        python_module("ragloop.service.cli", "status", "--data-dir", str(data_dir), "--json")
    ).output
    rec = {
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


# --- load driving -------------------------------------------------------------------------

# A worker's call: question -> None, raising on failure; plus a cleanup.
Call = Callable[[str], None]


class QuestionFeed:
    """Hands out questions in order, each once, to any number of threads.

    Every row gets a fresh feed, so every side sees the same questions in the same order. The
    server under test runs with its query-embedding cache off (``RAGLOOP_QUERY_CACHE_SIZE=0``):
    a question repeated from an earlier row would otherwise be a cache hit, not a query.
    """

    def __init__(self, questions: list[str]) -> None:
        self.questions = questions
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> str:
        """The next question."""
        with self._lock:
            q = self.questions[self._next % len(self.questions)]
            self._next += 1
            return q

    @property
    def wrapped(self) -> bool:
        """True once some question has been handed out twice."""
        return self._next > len(self.questions)


def drive(
    make_call: Callable[[], tuple[Call, Callable[[], None]]],
    questions: list[str] | QuestionFeed,
    clients: int,
    seconds: float,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """``clients`` threads, each calling in a loop for ``seconds`` (or until ``stop`` is set):
    latency percentiles, requests/s and errors.

    HTTP and in-process sides go through this same loop, so the comparison differs only in
    what one call does.
    """
    # A list starts a fresh feed; a feed passed in continues where its last run stopped.
    feed = questions if isinstance(questions, QuestionFeed) else QuestionFeed(questions)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker() -> None:
        call, close = make_call()
        try:
            start_gate.wait()
            while time.monotonic() < stop_at[0] and not (stop and stop.is_set()):
                q = feed.take()
                t0 = time.perf_counter()
                try:
                    call(q)
                    err = ""
                except Exception as exc:  # any failure is an error sample, never a crash
                    err = repr(exc)[:200]
                dt = time.perf_counter() - t0
                with lock:
                    if err:
                        errors.append(err)
                    else:
                        latencies.append(dt)
        finally:
            close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + seconds
    started = time.monotonic()
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return latency_summary(clients, latencies, errors, elapsed) | {
        "questions_repeated": feed.wrapped
    }


def http_call(url: str, route: str) -> Callable[[], tuple[Call, Callable[[], None]]]:
    """Per-thread keep-alive HTTP/1.1 clients for ``route`` (a non-200 answer is an error).

    The standard library's ``http.client`` rather than httpx: the load generator shares the two
    cores with the server, and the in-process floor has no client at all, so the client should
    cost as little CPU per request as possible (about a quarter of httpx's here).
    """
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    extra: dict[str, Any] = {"k": K} if route.startswith("/v1/") else {}
    headers = {"Content-Type": "application/json"}

    def make() -> tuple[Call, Callable[[], None]]:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)

        def call(q: str) -> None:
            conn.request("POST", route, json.dumps({"question": q, **extra}), headers)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError(f"{r.status} {body[:120]!r}")

        return call, conn.close

    return make


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


def measure_http(
    data_dir: Path, env: dict[str, str], questions: list[str], seconds: float
) -> list[dict[str, Any]]:
    """Start ``ragloop serve`` over the store and drive both routes at 1 and 8 clients."""
    from benchmarks.query_load import start_server

    proc, url = start_server(data_dir, bench_env(env | {"RAGLOOP_QUERY_CACHE_SIZE": "0"}))
    rows = []
    try:
        for route in ("/api/search", "/v1/query"):
            warm = questions[-200:]  # warm-up, dropped: questions the timed rows reach last
            drive(http_call(url, route), warm, 8, min(WARM_UP_S, seconds))
            for clients in (1, 8):
                print(f"  {route}, {clients} clients ...", flush=True)
                r = drive(http_call(url, route), questions, clients, seconds)
                rows.append({"side": f"HTTP {route}"} | r)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return rows


def measure_floor(
    data_dir: Path, env: dict[str, str], questions: list[str], seconds: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """encode + Chroma query in this process, from 1 and 8 threads, on the server's index."""
    from ragloop.core.query_batcher import QueryBatcher
    from ragloop.core.runtime import open_runtime
    from ragloop.core.settings import load_settings

    settings = load_settings(
        data_dir=data_dir,
        chunk_tokens=int(env["RAGLOOP_CHUNK_TOKENS"]),
        chunk_overlap=int(env["RAGLOOP_CHUNK_OVERLAP"]),
    )
    rt = open_runtime(settings)
    try:
        index = rt.active_index()
        coll = rt.store.client.get_collection(index.collection)  # type: ignore[attr-defined]
        embedder = index.embedder

        batcher = QueryBatcher(
            lambda texts: embedder.embed(texts, is_query=True), settings.query_batch_size
        )

        def floor(encode: Callable[[str], Any]) -> Callable[[], tuple[Call, Callable[[], None]]]:
            def make() -> tuple[Call, Callable[[], None]]:
                def call(q: str) -> None:
                    vec = encode(q)
                    coll.query(query_embeddings=[vec], n_results=K, include=["distances"])

                return call, lambda: None

            return make

        # No cache on this side either (the embedder is called directly).
        warm = questions[-200:]  # warm-up, dropped, as on the HTTP side
        drive(floor(embedder.embed_query), warm, 8, min(WARM_UP_S, seconds))
        drive(floor(batcher.embed_query), warm, 8, min(WARM_UP_S, seconds))
        rows = []
        for clients in (1, 8):
            print(f"  in-process floor, {clients} threads ...", flush=True)
            r = drive(floor(embedder.embed_query), questions, clients, seconds)
            rows.append({"side": FLOOR} | r)
        # The floor as the issue defines it encodes each query alone; the server coalesces
        # concurrent queries (QueryBatcher). This row gives the floor the same batching, so
        # the HTTP overhead can be read on its own too.
        print("  in-process floor with the server's query batching, 8 threads ...", flush=True)
        r = drive(floor(batcher.embed_query), questions, 8, seconds)
        rows.append({"side": FLOOR_BATCHED} | r)
        return rows, embedder_info(embedder)
    finally:
        rt.close()


def run(
    work: Path,
    seconds: float,
    chunk_tokens: int,
    overlap: int,
    min_chunks: int,
    quick: bool,
    docs: int | None = None,
) -> dict[str, Any]:
    """Build or reuse the store, measure HTTP then the floor; the JSON record."""
    env = chunk_env(chunk_tokens, overlap)
    limit = docs or (QUICK_DOCS if quick else None)
    data_dir, build = build_store(work, chunk_tokens, overlap, min_chunks, limit)
    questions = questions_mix()
    http = measure_http(data_dir, env, questions, seconds)
    floor, info = measure_floor(data_dir, env, questions, seconds)
    rows = http + floor
    print_table(
        f"query, k={K}, {build['chunks']:,} chunks stored ({chunk_tokens}-token chunks), "
        f"{seconds:g} s per row; embedder {info['backend']} {info['precision']}",
        rows,
        ["side", "clients", "requests", "errors", "p50_ms", "p99_ms", "rps"],
    )

    def p99(side: str, clients: int) -> float:
        return next(
            r["p99_ms"] or 0.0 for r in rows if r["side"] == side and r["clients"] == clients
        )

    ratios = {
        f"{route}_p99_over_floor_{c}": ratio(p99(f"HTTP {route}", c), p99(FLOOR, c))
        for route in ("/api/search", "/v1/query")
        for c in (1, 8)
    } | {
        f"{route}_p99_over_batched_floor_8": ratio(p99(f"HTTP {route}", 8), p99(FLOOR_BATCHED, 8))
        for route in ("/api/search", "/v1/query")
    }
    for key, value in ratios.items():
        goal = " (goal <= 1.3x)" if key == "/api/search_p99_over_floor_8" else ""
        print(f"ratio {key}: {value}x{goal}")
    errors = [r for r in rows if r["errors"]]
    for r in errors:
        print(f"errors on {r['side']} x{r['clients']}: {r['errors']}, first: {r['first_error']}")
    return {
        "benchmark": "query",
        "quick": quick,
        "k": K,
        "store": {k: v for k, v in build.items() if k != "ingest_report"},
        "data_dir": str(data_dir),
        "embedder": info | {"choice": backend_choice(data_dir)},
        "rows": rows,
        "ratios": ratios,
    }


def main() -> None:
    """Parse arguments, print the machine, run, optionally write JSON."""
    from benchmarks.machine import machine_record, print_machine

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    ap.add_argument("--seconds", type=float, default=20.0)
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
    )
    write_json(args.json, {"machine": machine} | record)


if __name__ == "__main__":
    main()

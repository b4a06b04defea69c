"""Do queries keep their latency while one client floods ``/v1/embeddings``?

Usage:
  python -m benchmarks.embeddings_fairness [--docs 300] [--clients 4] [--seconds 30]
      [--work-dir /tmp/ragloop-bench] [--keep-limits] [--json out.json]

Builds (once, then reuses) a small store of the first ``--docs`` SciFact documents, starts
``ragloop serve`` over it (extractive generator, query cache off) and measures ``/v1/query`` at
``--clients`` loopback clients for ``--seconds``: first alone, then while one more client sends
maximum-size embedding requests back to back (2,048 inputs of 976 characters: the most
characters one request may hold). It prints both p99s and their ratio; the goal is at most 3x.

The server runs with the embedding rate limits off (``RAGLOOP_EMBED_RATE_LIMIT_PER_MINUTE`` and
``RAGLOOP_EMBED_BYTES_PER_MINUTE`` = 0), so the flood is served in full and what is measured is
the scheduling: bulk embeddings go through the query batcher in slices of at most 512 padded
tokens that wait behind waiting queries. ``--keep-limits`` keeps the default limits instead
(the flood is then mostly refused with 429).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.common import (
    DEFAULT_WORK_DIR,
    bench_env,
    corpus_file,
    ingest_store,
    load_questions,
    print_table,
    ratio,
    reused_store,
    write_json,
)
from benchmarks.query_load import drive, http_call, start_server

K = 5
GOAL = 3.0
#: Seconds of query load before the timed rows, dropped (a fresh server's first requests).
WARM_UP_S = 5.0


def build_store(work: Path, docs: int) -> tuple[Path, dict[str, Any]]:
    """A data dir with the first ``docs`` SciFact documents (built once, then reused)."""
    from ragloop.eval.datasets import load_corpus

    data_dir = work / f"fairness-scifact-first{docs}"
    marker = data_dir / "bench-build.json"
    reused = reused_store(data_dir)
    if reused is not None:
        return data_dir, reused
    subset = work / f"fairness-scifact-first{docs}.jsonl"
    subset.parent.mkdir(parents=True, exist_ok=True)
    with subset.open("w", encoding="utf-8") as fh:
        for d in list(load_corpus(corpus_file("scifact")).values())[:docs]:
            fh.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    print(f"store: building {data_dir} ...", flush=True)
    t, status = ingest_store([subset], data_dir)
    rec: dict[str, Any] = {
        "documents": status["documents"],
        "chunks": status["chunks"],
        "ingest_wall_s": round(t.seconds, 1),
    }
    marker.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"store: {rec['chunks']:,} chunks, built in {rec['ingest_wall_s']} s", flush=True)
    return data_dir, rec


def max_size_body() -> tuple[bytes, int, int]:
    """The largest embeddings request the server accepts: its body, inputs and characters."""
    from ragloop.eval.datasets import load_corpus
    from ragloop.service.openai_api.embeddings import MAX_INPUTS, MAX_TOTAL_CHARS

    per_input = MAX_TOTAL_CHARS // MAX_INPUTS
    texts = [d.text for d in load_corpus(corpus_file("scifact")).values() if d.text.strip()]
    inputs = []
    for i in range(MAX_INPUTS):
        text = texts[i % len(texts)]
        while len(text) < per_input:
            text += " " + text
        inputs.append(text[:per_input])
    body = json.dumps({"input": inputs, "model": "ragloop"}).encode()
    return body, len(inputs), sum(len(t) for t in inputs)


class Flood:
    """One client sending maximum-size embedding requests back to back until stopped."""

    def __init__(self, url: str, body: bytes, inputs: int) -> None:
        self.parts = urlsplit(url)
        self.body = body
        self.inputs = inputs
        self.stop = threading.Event()
        self.done = 0
        self.refused = 0
        self.errors: list[str] = []
        self.seconds: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        headers = {"Content-Type": "application/json"}
        while not self.stop.is_set():
            conn = http.client.HTTPConnection(
                self.parts.hostname or "127.0.0.1", self.parts.port, timeout=600
            )
            try:
                t0 = time.perf_counter()
                conn.request("POST", "/v1/embeddings", self.body, headers)
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    self.done += 1
                    self.seconds.append(time.perf_counter() - t0)
                elif r.status == 429:
                    self.refused += 1
                    self.stop.wait(float(r.getheader("retry-after") or 1))
                else:
                    self.errors.append(str(r.status))
            except Exception as exc:  # the server going away at the end is expected
                if not self.stop.is_set():
                    self.errors.append(repr(exc)[:200])
            finally:
                conn.close()

    def summary(self, elapsed: float) -> dict[str, Any]:
        """What the flood got done while the queries ran."""
        return {
            "embed_requests_done": self.done,
            "embed_requests_refused": self.refused,
            "embed_errors": len(self.errors),
            "embed_request_s": round(sum(self.seconds) / len(self.seconds), 1)
            if self.seconds
            else None,
            "elapsed_s": round(elapsed, 1),
        }


def main() -> None:
    """Parse arguments, run both rows, print the table and the goal."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    ap.add_argument("--keep-limits", action="store_true", help="keep the default rate limits")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    load_before = os.getloadavg()
    data_dir, store = build_store(args.work_dir, args.docs)
    questions = load_questions("scifact")
    body, n_inputs, n_chars = max_size_body()
    env = {"RAGLOOP_QUERY_CACHE_SIZE": "0"}
    if not args.keep_limits:
        env |= {"RAGLOOP_EMBED_RATE_LIMIT_PER_MINUTE": "0", "RAGLOOP_EMBED_BYTES_PER_MINUTE": "0"}
    proc, url = start_server(data_dir, bench_env(env))
    flood = Flood(url, body, n_inputs)
    try:
        call = http_call(url, "/v1/query", K)
        drive(call, questions[::-1], args.clients, WARM_UP_S)
        print(f"/v1/query, {args.clients} clients, alone ...", flush=True)
        alone = drive(call, questions, args.clients, args.seconds)
        print(f"/v1/query, {args.clients} clients, beside the embedding flood ...", flush=True)
        flood.thread.start()
        time.sleep(1.0)  # the first request is parsed and embedding when the queries start
        started = time.monotonic()
        beside = drive(call, questions, args.clients, args.seconds)
        flooded = flood.summary(time.monotonic() - started)
        flood.stop.set()
    finally:
        # uvicorn would finish the embedding request in flight before exiting: do not wait.
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    load_after = os.getloadavg()

    rows = [
        {"row": "alone"} | alone,
        {"row": "beside max-size /v1/embeddings"} | beside,
    ]
    print_table(
        f"/v1/query at {args.clients} clients over {store['chunks']:,} chunks, "
        f"{args.seconds:g} s each",
        rows,
        ["row", "requests", "errors", "p50_ms", "p99_ms", "rps"],
    )
    p99_ratio = ratio(beside["p99_ms"] or 0.0, alone["p99_ms"] or 0.0)
    print(
        f"\nflood: {n_inputs} inputs, {n_chars:,} characters, {len(body):,} bytes a request; "
        f"{flooded['embed_requests_done']} done, {flooded['embed_requests_refused']} refused "
        f"(429), {flooded['embed_errors']} errors"
        + (f", {flooded['embed_request_s']} s each" if flooded["embed_request_s"] else "")
    )
    print(
        "load average (1, 5, 15 min): before "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + "; after "
        + ", ".join(f"{x:.2f}" for x in load_after)
    )
    verdict = "PASS" if 0 < p99_ratio <= GOAL else "FAIL"
    print(f"p99 beside the flood / alone = {p99_ratio} (goal <= {GOAL}x): {verdict}")
    write_json(
        args.json,
        {
            "benchmark": "embeddings_fairness",
            "store": store,
            "rows": rows,
            "flood": flooded | {"inputs": n_inputs, "chars": n_chars, "bytes": len(body)},
            "p99_ratio": p99_ratio,
            "goal": GOAL,
            "limits": "default" if args.keep_limits else "embedding limits off",
            "load_average": {"before": load_before, "after": load_after},
        },
    )


if __name__ == "__main__":
    main()

"""Concurrent clients against a live ``ragloop serve`` on loopback: errors, p50/p99, requests/s.

Usage:
  python -m benchmarks.query_load --data-dir DIR [--clients 8] [--seconds 30]
      [--route /v1/query] [--queries ../shared/data/scifact/queries.jsonl] [--url URL]

Without --url it starts ``ragloop serve`` on a free loopback port over DIR (extractive
generator) and stops it afterwards. Each client sends questions from the queries file in a
loop, for a fixed time, and every non-200 answer or transport error counts as an error. The
load driver here (``drive``, ``http_call``, ``QuestionFeed``) is the one ``benchmarks.query``
and ``benchmarks.reembed`` use.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import latency_summary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``ragloop serve`` and wait until /readyz answers."""
    port = _free_port()
    env = os.environ | {"RAGLOOP_GENERATOR": "extractive"} | extra_env
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ragloop.cli.main",
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{url}/readyz", 180, "ragloop serve did not become ready")
    return proc, url


def wait_ready(
    proc: subprocess.Popen[bytes],
    probe: str,
    within_s: float,
    failure: str,
    timeout: float = 2,
    poll_s: float = 0.5,
) -> None:
    """Poll ``probe`` until it answers 200; kill ``proc`` and exit with ``failure`` if it dies
    or ``within_s`` seconds pass first."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if httpx.get(probe, timeout=timeout).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(failure)
        time.sleep(poll_s)


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


class Samples:
    """Latencies and errors gathered over one or more runs of a row, and their summary."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.elapsed = 0.0

    def summary(self, clients: int) -> dict[str, Any]:
        """Percentiles, counts and requests/s over everything gathered."""
        return latency_summary(clients, self.latencies, self.errors, self.elapsed)


def drive(
    make_call: Callable[[], tuple[Call, Callable[[], None]]],
    questions: list[str] | QuestionFeed,
    clients: int,
    seconds: float,
    stop: threading.Event | None = None,
    samples: Samples | None = None,
) -> dict[str, Any]:
    """``clients`` threads, each calling in a loop for ``seconds`` (or until ``stop`` is set):
    latency percentiles, requests/s and errors of this run; ``samples`` also gets them.

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
    if samples is not None:
        samples.latencies += latencies
        samples.errors += errors
        samples.elapsed += elapsed
    return latency_summary(clients, latencies, errors, elapsed) | {
        "questions_repeated": feed.wrapped
    }


def http_call(url: str, route: str, k: int = 5) -> Callable[[], tuple[Call, Callable[[], None]]]:
    """Per-thread keep-alive HTTP/1.1 clients for ``route`` (a non-200 answer is an error);
    ``/v1/`` routes are sent ``k``.

    The standard library's ``http.client`` rather than httpx: the load generator shares the two
    cores with the server, and the in-process floor has no client at all, so the client should
    cost as little CPU per request as possible (about a quarter of httpx's here).
    """
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    extra: dict[str, Any] = {"k": k} if route.startswith("/v1/") else {}
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


def main() -> None:
    """Parse arguments, run, print JSON."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--url")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--route", default="/v1/query")
    ap.add_argument("--k", type=int, default=5, help="sent to /v1/ routes")
    ap.add_argument("--queries", type=Path, default=Path("../shared/data/scifact/queries.jsonl"))
    args = ap.parse_args()
    questions = [json.loads(line)["text"] for line in args.queries.read_text().splitlines()]
    proc = None
    url = args.url
    if url is None:
        if args.data_dir is None:
            raise SystemExit("give --data-dir (to start a server) or --url")
        proc, url = start_server(args.data_dir, {})
    try:
        result = drive(http_call(url, args.route, args.k), questions, args.clients, args.seconds)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
    print(json.dumps({"route": args.route} | result, indent=2))


if __name__ == "__main__":
    main()

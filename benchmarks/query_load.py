"""Concurrent clients against a live ``ragloop serve`` on loopback: errors, p50/p99, requests/s.

Usage:
  python -m benchmarks.query_load --data-dir DIR [--clients 8] [--seconds 30]
      [--route /v1/query] [--queries ../shared/data/scifact/queries.jsonl] [--url URL]

Without --url it starts ``ragloop serve`` on a free loopback port over DIR (extractive
generator) and stops it afterwards. Each client sends questions from the queries file in a
loop, for a fixed time, and every non-200 answer or transport error counts as an error.
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
            "ragloop.service.cli",
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
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("ragloop serve did not become ready")
        time.sleep(0.5)


def run_load(
    url: str,
    route: str,
    questions: list[str],
    clients: int,
    seconds: float,
    body: dict[str, object],
) -> dict[str, Any]:
    """Drive ``clients`` threads for ``seconds``; return latency percentiles and counts."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            i = offset
            while time.monotonic() < stop:
                payload = {"question": questions[i % len(questions)], **body}
                i += clients
                t0 = time.perf_counter()
                try:
                    r = http.post(route, json=payload)
                    ok = r.status_code == 200
                    err = "" if ok else f"{r.status_code} {r.text[:120]}"
                except httpx.HTTPError as exc:
                    ok, err = False, repr(exc)
                dt = time.perf_counter() - t0
                with lock:
                    if ok:
                        latencies.append(dt)
                    else:
                        errors.append(err)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return latency_summary(clients, latencies, errors, elapsed)


def main() -> None:
    """Parse arguments, run, print JSON."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--url")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--route", default="/v1/query")
    ap.add_argument("--k", type=int, default=5)
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
        body = {"k": args.k} if args.route.startswith("/v1/") else {}
        result = run_load(url, args.route, questions, args.clients, args.seconds, body)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
    print(json.dumps({"route": args.route} | result, indent=2))


if __name__ == "__main__":
    main()

"""Learning-loop acceptance runs at corpus scale: queries during a promotion, and kill -9.

Usage:
  python scripts/promotion_checks.py load --data-dir DIR --queries QUERIES.jsonl
      [--clients 8] [--retrain-json '{...}']
  python scripts/promotion_checks.py kill --data-dir DIR --queries QUERIES.jsonl
      [--phase re-embedding|training] [--retrain-json '{...}']

DIR must hold an ingested corpus with feedback (e.g. a copy of a data dir after
``scripts/loop_replay.py``). Both modes start ``ragloop serve`` over DIR and a retrain with the
given options (default: a small one, so that the run is about promotion, not training).

``load``: ``--clients`` threads send ``POST /v1/query`` without pause from the moment the
candidate starts embedding the corpus until 10 s after the switch. Afterwards, with the server
stopped, every distinct (question, reported version) is searched again in-process with that
version's own model and collection; a response is consistent when its sources are exactly those
chunks. Prints errors, latency and the consistency count as JSON.

``kill``: SIGKILLs the server in the middle of the chosen phase (half-way through the vector
upserts of ``re-embedding``, or while the worker trains), checks the catalog still names the old
version, restarts the server, checks the old version answers at once, then waits for the job
to finish (promoted on resume) or fail (worker phase), and runs ``ragloop check``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.query_load import start_server

TOKEN = "checks-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SMALL_RETRAIN = {
    "sources": ["labelled", "synthetic"],
    "max_synthetic_chunks": 600,
    "hard_negatives": False,
    "margin": 0.0,
}


def _questions(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]


def _start(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    return start_server(data_dir, {"RAGLOOP_ADMIN_TOKEN": TOKEN})


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()


class Clients:
    """Threads querying without pause; every response and error is kept."""

    def __init__(self, url: str, questions: list[str], n: int) -> None:
        self.url, self.questions, self.n = url, questions, n
        self.responses: list[tuple[float, float, str, str, list[str]]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(n)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            if t.is_alive():
                t.join()

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as http:
            i = offset
            while not self._stop.is_set():
                q = self.questions[i % len(self.questions)]
                i += self.n
                t0 = time.time()
                try:
                    r = http.post("/v1/query", json={"question": q, "k": 5})
                    if r.status_code != 200:
                        raise RuntimeError(f"{r.status_code} {r.text[:200]}")
                    body = r.json()
                    ids = [s["chunk_id"] for s in body["sources"]]
                    with self._lock:
                        self.responses.append((t0, time.time() - t0, q, body["model_version"], ids))
                except Exception as exc:  # an error of any kind is what this run counts
                    with self._lock:
                        self.errors.append(f"{exc.__class__.__name__}: {exc}")


def _retrain(http: httpx.Client, options: dict[str, Any]) -> dict[str, Any]:
    r = http.post("/admin/retrain", json=options, headers=ADMIN)
    if r.status_code >= 300:
        raise SystemExit(f"retrain refused: {r.status_code} {r.text}")
    return dict(r.json())


def _job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    return dict(http.get(f"/admin/jobs/{job_id}", headers=ADMIN).json())


def _wait(http: httpx.Client, job_id: str, until: Any, poll: float = 1.0) -> dict[str, Any]:
    last = ""
    while True:
        job = _job(http, job_id)
        line = f"{job['state']} {job['progress']:.2f} {job['message']}"
        if line != last:
            print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)
            last = line
        if until(job):
            return job
        time.sleep(poll)


def verify(
    data_dir: Path, responses: list[tuple[float, float, str, str, list[str]]]
) -> dict[str, Any]:
    """Search every distinct (question, version) again with that version's model and vectors."""
    from ragloop.core.retriever import search
    from ragloop.core.runtime import open_runtime
    from ragloop.core.settings import load_settings

    rt = open_runtime(load_settings(data_dir=data_dir))
    try:
        distinct = {(q, v): ids for _, _, q, v, ids in responses}
        bad = []
        for (q, v), ids in distinct.items():
            index = rt.index_for(rt.catalog.get_version(v))
            again = [h.chunk.id for h in search(index, rt.store, rt.catalog, q, k=5)]
            if again != ids:
                bad.append({"question": q, "version": v, "served": ids, "expected": again})
        return {"checked": len(distinct), "inconsistent": len(bad), "examples": bad[:3]}
    finally:
        rt.close()


def run_load(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    """Clients query throughout a retrain and promotion; then check version consistency."""
    proc, url = _start(args.data_dir)
    clients = Clients(url, _questions(args.queries), args.clients)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            before = http.get("/readyz").json()["model_version"]
            job = _retrain(http, options)
            marks: dict[str, float] = {}

            def encoding(j: dict[str, Any]) -> bool:
                # Clients start as the candidate starts embedding the corpus: before that the
                # job only trains, and 8 busy clients on 2 cores would just slow training down.
                if j["done"]:
                    raise SystemExit(f"the job ended before its re-embedding: {j['message']}")
                return "embedding corpus" in j["message"] or j["state"] == "re-embedding"

            _wait(http, job["id"], encoding, poll=0.5)
            clients.start()
            marks["clients"] = time.time()

            def done(j: dict[str, Any]) -> bool:
                marks.setdefault(j["state"], time.time())
                return bool(j["done"])

            job = _wait(http, job["id"], done)
            time.sleep(10)
            clients.stop()
            after = http.get("/readyz").json()["model_version"]
    finally:
        clients.stop()
        _stop(proc)
    lat = np.array([r[1] for r in clients.responses]) * 1000
    start = marks.get("re-embedding", float("inf"))
    during = np.array([r[1] for r in clients.responses if r[0] >= start]) * 1000
    versions: dict[str, int] = {}
    for r in clients.responses:
        versions[r[3]] = versions.get(r[3], 0) + 1
    return {
        "job": {"id": job["id"], "state": job["state"], "message": job["message"]},
        "versions": {"before": before, "after": after, "responses_by_version": versions},
        "clients": args.clients,
        "requests": len(clients.responses),
        "errors": len(clients.errors),
        "error_examples": clients.errors[:3],
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "during_re_embedding": {
            "requests": len(during),
            "p99_ms": round(float(np.percentile(during, 99)), 1) if len(during) else None,
        },
        "consistency": verify(args.data_dir, clients.responses),
    }


def run_kill(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    """SIGKILL the server mid-phase, restart, and check what the catalog and service say."""
    from ragloop.core.settings import load_settings
    from ragloop.core.storage.catalog import Catalog

    proc, url = _start(args.data_dir)
    with httpx.Client(base_url=url, timeout=60) as http:
        before = http.get("/readyz").json()["model_version"]
        job = _retrain(http, options)

        def at_kill_point(j: dict[str, Any]) -> bool:
            if j["done"]:
                raise SystemExit(f"the job ended before the kill point: {j['state']}")
            if args.phase == "training":
                return "training step" in j["message"]
            if j["state"] != "re-embedding" or "/" not in j["message"]:
                return False
            done, total = (int(x) for x in j["message"].split()[-1].split("/"))
            return done >= total // 3

        killed_at = _wait(http, job["id"], at_kill_point, poll=0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    settings = load_settings(data_dir=args.data_dir)
    catalog = Catalog.open(settings.resolved_catalog_url)
    active_after_kill = catalog.active_version()
    catalog.close()
    time.sleep(3)  # a worker notices its server died and exits
    proc, url = _start(args.data_dir)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            served = http.post("/v1/query", json={"question": "What causes cancer?"}).json()
            job = _wait(http, job["id"], lambda j: bool(j["done"]))
            final = http.get("/readyz").json()["model_version"]
    finally:
        _stop(proc)
    cli = [sys.executable, "-m", "ragloop.cli.main"]
    check = subprocess.run(
        [*cli, "check", "--json", "--data-dir", str(args.data_dir)],
        capture_output=True,
        text=True,
    )
    return {
        "phase": args.phase,
        "killed_at": killed_at["message"],
        "active_before": before,
        "active_in_catalog_after_kill": active_after_kill.version if active_after_kill else None,
        "first_answer_after_restart_version": served.get("model_version"),
        "job": {"state": job["state"], "message": job["message"]},
        "active_at_end": final,
        "ragloop_check": {"exit": check.returncode, "report": json.loads(check.stdout or "{}")},
    }


def main() -> None:
    """Parse arguments, run one mode, print its JSON report."""
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["load", "kill"])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--phase", choices=["re-embedding", "training"], default="re-embedding")
    ap.add_argument("--retrain-json", default="{}")
    args = ap.parse_args()
    options = SMALL_RETRAIN | json.loads(args.retrain_json)
    report = run_load(args, options) if args.mode == "load" else run_kill(args, options)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

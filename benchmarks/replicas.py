"""Past one machine: /v1/query throughput with one replica vs two, and catalog operations per
second on SQLite vs PostgreSQL.

Usage:
  python -m benchmarks.replicas [--docs 300] [--clients 8] [--seconds 20] [--ops-seconds 3]
      [--json PATH]

Starts a throwaway PostgreSQL (``tests/pg_server.py``: initdb on a free loopback port,
durability off as in the tests) and a ``chroma run`` server, ingests the first ``--docs``
SciFact documents through ``ragloop ingest`` into that catalog and Chroma, then:

1. one ``ragloop serve`` replica (one worker, extractive generator): ``--clients`` keep-alive
   loopback clients send SciFact questions to ``/v1/query`` (k=5) for ``--seconds``;
2. a second replica on the same catalog, Chroma and data dir: the same clients, half on each
   replica (round robin), for the same time.

Both rows use the load driver of ``benchmarks.query_load``. Then, in this process, each
catalog operation is run back to back for ``--ops-seconds`` on a SQLite file catalog and on
the PostgreSQL one (one connection pool, one thread): log a query (``QueryLog.log``), read the
active pointer (``Catalog.active_version``), add a labelled pair (``QueryLog.add_pair``), and
take + release a lease (``Leases``). ``uptime`` is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

from benchmarks.common import bench_env, corpus_file, load_questions, print_table, write_json
from benchmarks.query_load import Call, drive, http_call, start_server, wait_ready


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _chroma(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    from benchmarks.query_load import _free_port

    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "run", "--path", str(root), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{url}/api/v2/heartbeat", 60, "chroma run did not start", 1, 0.2)
    return proc, url


def _subset(docs: int, out: Path) -> Path:
    with corpus_file("scifact").open() as src, out.open("w") as dst:
        for i, line in enumerate(src):
            if i >= docs:
                break
            dst.write(line)
    return out


def _round_robin(
    makers: list[Callable[[], tuple[Call, Callable[[], None]]]],
) -> Callable[[], tuple[Call, Callable[[], None]]]:
    turn = count()
    return lambda: makers[next(turn) % len(makers)]()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _catalog_ops(url: str, seconds: float) -> dict[str, float]:
    """Operations per second, one thread, back to back."""
    from ragloop.core.records import ModelVersion
    from ragloop.core.storage.catalog import Catalog
    from ragloop.core.storage.leases import Leases
    from ragloop.core.storage.querylog import QueryLog, QueryRecord

    catalog = Catalog.open(url)
    try:
        catalog.add_version(
            ModelVersion(
                version="bench",
                model_ref="bench",
                parent=None,
                dimension=384,
                max_seq_length=256,
                collection="bench",
                status="active",
                created_at=time.time(),
                info={},
            )
        )
        catalog.set_active("bench")
        log = QueryLog(catalog.engine)
        leases = Leases(catalog.engine, ttl_s=30)

        def log_query() -> None:
            log.log(
                QueryRecord(
                    id=log.new_id(),
                    created_at=time.time(),
                    question="what does the active model answer",
                    k=5,
                    model_version="bench",
                    generator="extractive",
                    answer="an answer",
                    retrieved=[(f"c{i}", 0.5 - i / 100) for i in range(5)],
                    top_score=0.5,
                    miss=False,
                    miss_reasons=[],
                    latency_ms=12.0,
                )
            )

        def lease() -> None:
            leases.try_acquire("bench")
            leases.release("bench")

        ops: dict[str, Callable[[], Any]] = {
            "log a query": log_query,
            "read the active pointer": catalog.active_version,
            "add a labelled pair": lambda: log.add_pair(uuid.uuid4().hex, "c1", "feedback", None),
            "take + release a lease": lease,
        }
        rates: dict[str, float] = {}
        for name, op in ops.items():
            op()  # warm
            n = 0
            started = time.perf_counter()
            while time.perf_counter() - started < seconds:
                op()
                n += 1
            rates[name] = n / (time.perf_counter() - started)
        leases.close()
        return rates
    finally:
        catalog.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--ops-seconds", type=float, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg_server import PostgresServer

    record: dict[str, Any] = {"uptime_before": _uptime(), "args": vars(args) | {"json": None}}
    work = Path(tempfile.mkdtemp(prefix="ragloop-replicas-"))
    pg = PostgresServer()
    pg.start()
    chroma, chroma_url = _chroma(work / "chroma")
    servers: list[subprocess.Popen[bytes]] = []
    try:
        catalog_url = pg.url(pg.create_database())
        env = {"RAGLOOP_CATALOG_URL": catalog_url, "RAGLOOP_CHROMA_URL": chroma_url}
        data = work / "data"
        corpus = _subset(args.docs, work / "corpus.jsonl")
        ingest = subprocess.run(
            [
                sys.executable,
                "-m",
                "ragloop.cli.main",
                "ingest",
                str(corpus),
                "--json",
                "--data-dir",
                str(data),
            ],
            env=bench_env(env),
            capture_output=True,
            text=True,
        )
        if ingest.returncode != 0:
            raise SystemExit(f"ingest failed: {ingest.stderr[-2000:]}")
        report = json.loads(ingest.stdout)
        record["ingest"] = {k: report.get(k) for k in ("added", "chunks_embedded")}
        questions = load_questions("scifact")
        rows = []
        a, url_a = start_server(data, bench_env(env))
        servers.append(a)
        one = drive(http_call(url_a, "/v1/query"), questions, args.clients, args.seconds)
        rows.append({"setup": "one replica"} | one)
        b, url_b = start_server(data, bench_env(env))
        servers.append(b)
        both = _round_robin([http_call(url_a, "/v1/query"), http_call(url_b, "/v1/query")])
        two = drive(both, questions, args.clients, args.seconds)
        rows.append({"setup": "two replicas"} | two)
        for s in servers:
            _stop(s)
        servers.clear()
        record["query"] = rows
        sqlite_url = f"sqlite:///{work / 'ops.sqlite'}"
        ops = {
            "sqlite": _catalog_ops(sqlite_url, args.ops_seconds),
            "postgresql": _catalog_ops(pg.url(pg.create_database()), args.ops_seconds),
        }
        record["catalog_ops_per_s"] = ops
        record["uptime_after"] = _uptime()
    finally:
        for s in servers:
            _stop(s)
        _stop(chroma)
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)

    print_table(
        f"/v1/query, {args.clients} clients, {args.seconds:.0f} s",
        record["query"],
        ["setup", "requests", "errors", "p50_ms", "p99_ms", "rps"],
    )
    print_table(
        "catalog operations per second (one thread)",
        [{"operation": op} | {db: ops[db][op] for db in ops} for op in ops["sqlite"]],
        ["operation", "sqlite", "postgresql"],
    )
    print(f"before: {record['uptime_before']}\nafter:  {record['uptime_after']}")
    write_json(args.json, record)


if __name__ == "__main__":
    main()

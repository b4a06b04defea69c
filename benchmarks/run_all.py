"""Every benchmark in one run (``make bench``): machine, encode, ingest, query, re-embed.

Usage:
  python -m benchmarks.run_all [--quick] [--only encode,ingest,query,reembed]
      [--work-dir /tmp/ragloop-bench] [--json benchmarks/results/latest.json]

Prints each benchmark's tables as it goes, then the issue's goals as measured in this run, and
writes one JSON record (machine, results, goals, commit, timings). Each benchmark runs in its
own process (``python -m benchmarks.<name>``). On the quiet 2-core project
machine the full run should take roughly 30 minutes once the 100k-chunk query store exists;
building that store the first time adds its own ingest (see ``benchmarks/query.py``; it is
resumable, and kept under WORK_DIR). ``--quick`` is a smoke run of every step on small subsets
(about 20 minutes on a busy machine, mostly ragloop's per-data-dir backend choice and model
loading). A benchmark that fails is reported and the others still run; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_WORK_DIR, REPO, write_json

ALL = ("encode", "ingest", "query", "reembed")


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals, each with the value measured in this run and whether it is met."""
    out: list[dict[str, Any]] = []

    def add(goal: str, value: float | None, target: float, higher_is_better: bool) -> None:
        met = None if value is None else (value >= target if higher_is_better else value <= target)
        out.append({"goal": goal, "measured": value, "met": met})

    ingest = results.get("ingest", {})
    for c in ingest.get("corpora", []):
        r = c["ratios"]
        add(
            f"ingest {c['corpus']}: ragloop/langchain (as written) documents/s >= 3x",
            r.get(
                "first_ingest_docs_per_s_ragloop_over_langchain_as_written",
                r["first_ingest_docs_per_s_ragloop_over_langchain"],
            ),
            3.0,
            True,
        )
        add(
            f"re-ingest unchanged {c['corpus']}: first/re-ingest wall >= 50x",
            r["first_over_unchanged_reingest_wall"],
            50.0,
            True,
        )
    enc = results.get("encode", {})
    if enc.get("rows"):
        add("encode at 256 tokens >= 60% of bf16 peak", enc["rows"][0]["% bf16 peak"], 60.0, True)
    q = results.get("query", {})
    if q.get("ratios"):
        add(
            "/api/search p99, 8 clients <= 1.3x the in-process floor's",
            q["ratios"]["/api/search_p99_over_floor_8"],
            1.3,
            False,
        )
    return out


def _isolated(name: str, argv: list[str]) -> dict[str, Any]:
    """Run ``python -m benchmarks.<name>`` in a fresh process; its JSON record.

    One process per benchmark, so no benchmark inherits another's models, thread pools or
    caches: in one run that shared a process, the query floor (after the encode benchmark's two
    models) came out slower than the HTTP server it is the floor of. The child prints its own
    tables and measures the machine again, so each share of the peak is against the peak
    measured beside it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "record.json"
        subprocess.run(
            [sys.executable, "-m", f"benchmarks.{name}", *argv, "--json", str(out)],
            cwd=REPO,
            check=True,
        )
        record: dict[str, Any] = json.loads(out.read_text())
    return record


def main() -> None:
    """Run the selected benchmarks, print the goals, write the JSON record."""
    from benchmarks.machine import machine_record, print_machine

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: small data, short rows")
    ap.add_argument("--only", default=",".join(ALL), help="comma-separated subset of the above")
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "latest.json")
    args = ap.parse_args()
    selected = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = sorted(set(selected) - set(ALL))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {', '.join(ALL)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    started, started_at = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M:%S %Z")
    machine = machine_record(0.5 if args.quick else 2.0)
    print_machine(machine)
    common = ["--work-dir", str(args.work_dir), *(["--quick"] if args.quick else [])]
    runners = {name: (lambda name=name: _isolated(name, common)) for name in ALL}
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    failed: list[str] = []
    for name in selected:
        print(f"\n######## {name}", flush=True)
        t0 = time.perf_counter()
        try:
            results[name] = runners[name]()
        except (Exception, SystemExit) as exc:  # one failure must not lose the other results
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append(name)
        seconds[name] = round(time.perf_counter() - t0, 1)
        print(f"[{name} took {seconds[name]} s]", flush=True)

    measured = goals(results)
    print("\n== goals, measured in this run")
    for g in measured:
        mark = {True: "met", False: "NOT met", None: "n/a"}[g["met"]]
        print(f"{mark:8s} {g['goal']}: {g['measured']}")
    total = round(time.perf_counter() - started, 1)
    print(f"\ntotal {total} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    write_json(
        args.json,
        {
            "command": " ".join(["python -m benchmarks.run_all", *sys.argv[1:]]),
            "commit": _commit(),
            "started_at": started_at,
            "quick": args.quick,
            "machine": machine,
            "results": results,
            "goals": measured,
            "seconds": seconds | {"total": total},
        },
    )
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

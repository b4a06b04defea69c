"""Re-embedding during a promotion: chunks/s with and without 8 clients querying over HTTP.

Usage:
  python -m benchmarks.reembed [--docs 2000] [--work-dir /tmp/ragloop-bench] [--quick]
      [--json PATH]

A promotion that re-embeds is driven through the server's own admin API: a copy of the base
model is registered as a new, retired model version with an empty collection, and
``POST /admin/models/{version}/activate`` makes it active. ``Promoter.activate`` then loads the
version's model, catches its collection up with the catalog (embedding every chunk, in
length-sorted batches, exactly as a real promotion's catch-up and as ingest do) and switches the
active pointer under the write lock, while the old version keeps serving. (A retrain job's
promotion differs only in that the worker process embeds the corpus before the gate; its
vectors are then upserted.) The copy carries the base version's cached backend decision and
ONNX export, so activation measures re-embedding rather than a second backend choice.

Two activations on the same server: one idle, one while 8 loopback clients query
``/api/search``; a short 8-client run before the promotions is the latency baseline. The store
is SciFact's first ``--docs`` documents, built once under WORK_DIR and copied for each run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    DEFAULT_WORK_DIR,
    backend_choice,
    bench_env,
    corpus_file,
    print_table,
    python_module,
    ratio,
    run_json,
    write_json,
)
from benchmarks.query import questions_mix
from benchmarks.query_load import QuestionFeed, drive, http_call

TOKEN = "ragloop-bench-admin"
QUICK_DOCS = 100


def build_template(work: Path, docs: int) -> tuple[Path, dict[str, Any]]:
    """SciFact's first ``docs`` documents ingested once (default settings); reused afterwards."""
    from ragloop.eval.datasets import load_corpus

    template = work / f"reembed-template-{docs}"
    marker = template / "bench-build.json"
    if marker.exists():
        return template, json.loads(marker.read_text())
    shutil.rmtree(template, ignore_errors=True)
    corpus = work / "reembed-corpus" / f"scifact-{docs}.jsonl"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    with corpus.open("w", encoding="utf-8") as fh:
        for d in list(load_corpus(corpus_file("scifact")).values())[:docs]:
            fh.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    print(f"store: building {template} ({docs} SciFact documents) ...", flush=True)
    argv = python_module("ragloop.cli.main", "ingest", str(corpus), "--data-dir")
    t = run_json([*argv, str(template), "--json"])
    rec = {"documents": docs, "chunks": t.output["chunks_embedded"], "ingest_wall_s": t.seconds}
    marker.write_text(json.dumps(rec))
    return template, rec


def register_copy(data_dir: Path, version: str) -> None:
    """Register a copy of the base model as a retired version with an empty collection.

    Retired, not candidate: ``/admin/models/{v}/activate`` is the roll-forward path, which
    accepts kept versions and re-embeds whatever their collection lacks (here, everything).
    """
    from ragloop.core.embedding.torch_embedder import bundled_model_path
    from ragloop.core.records import ModelVersion
    from ragloop.core.settings import load_settings
    from ragloop.core.storage.catalog import Catalog
    from ragloop.core.storage.vectors import collection_name

    settings = load_settings(data_dir=data_dir)
    model_dir = settings.models_dir / version
    shutil.copytree(bundled_model_path(), model_dir, ignore=shutil.ignore_patterns("onnx"))
    # Same weights, same fingerprint: carry the base's backend decision and exports over.
    if (data_dir / "onnx").is_dir():
        shutil.copytree(data_dir / "onnx", model_dir / "onnx")
    catalog = Catalog.open(settings.resolved_catalog_url)
    try:
        base = catalog.get_version("base")
        catalog.add_version(
            ModelVersion(
                version=version,
                model_ref=str(model_dir.resolve()),
                parent=base.version,
                dimension=base.dimension,
                max_seq_length=base.max_seq_length,
                collection=collection_name(catalog.instance_id(), version),
                status="retired",
                created_at=time.time(),
                info={"kind": "full", "benchmark": "reembed: a copy of the base model"},
            )
        )
    finally:
        catalog.close()


def activate(url: str, version: str) -> float:
    """POST the activation and wait for it; returns its wall seconds."""
    import httpx

    started = time.perf_counter()
    r = httpx.post(
        f"{url}/admin/models/{version}/activate",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=3600,
    )
    seconds = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"activate {version}: {r.status_code} {r.text[:300]}")
    active = [v["version"] for v in r.json() if v["active"]]
    if active != [version]:
        raise RuntimeError(f"after activating {version} the active version is {active}")
    return seconds


def run(work: Path, docs: int, quick: bool) -> dict[str, Any]:
    """Idle promotion, baseline load, promotion under load; the JSON record."""
    from benchmarks.query_load import start_server

    template, build = build_template(work, docs)
    data_dir = work / "reembed-run"
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.copytree(template, data_dir)
    chunks = int(build["chunks"])
    choice = backend_choice(data_dir)
    register_copy(data_dir, "copy-idle")
    register_copy(data_dir, "copy-loaded")
    feed = QuestionFeed(questions_mix())  # no question repeats: no query-cache hits
    baseline_s = 4.0 if quick else 15.0

    proc, url = start_server(data_dir, bench_env({"RAGLOOP_ADMIN_TOKEN": TOKEN}))
    try:
        drive(http_call(url, "/api/search"), feed, 2, 2.0)  # warm-up, dropped
        print("  promotion with no query load ...", flush=True)
        idle_s = activate(url, "copy-idle")
        print(f"  8 clients, no promotion ({baseline_s:g} s) ...", flush=True)
        baseline = drive(http_call(url, "/api/search"), feed, 8, baseline_s)
        print("  promotion while 8 clients query ...", flush=True)
        stop = threading.Event()
        during: dict[str, Any] = {}

        def clients() -> None:
            during.update(drive(http_call(url, "/api/search"), feed, 8, 3600, stop))

        load = threading.Thread(target=clients)
        load.start()
        time.sleep(1.0)  # let the clients reach steady state before the promotion starts
        try:
            loaded_s = activate(url, "copy-loaded")
        finally:
            stop.set()
            load.join()
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    rows = [
        {
            "promotion": "idle",
            "chunks": chunks,
            "seconds": round(idle_s, 1),
            "chunks/s": round(chunks / idle_s, 1),
        },
        {
            "promotion": "8 clients querying",
            "chunks": chunks,
            "seconds": round(loaded_s, 1),
            "chunks/s": round(chunks / loaded_s, 1),
        },
    ]
    print_table(
        f"re-embed during promotion ({choice['backend']} {choice['precision']}; "
        f"activation wall time, model load included)",
        rows,
        ["promotion", "chunks", "seconds", "chunks/s"],
    )
    print_table(
        "/api/search, 8 loopback clients",
        [{"when": "no promotion"} | baseline, {"when": "during the promotion"} | during],
        ["when", "requests", "errors", "p50_ms", "p99_ms", "rps"],
    )
    slowdown = ratio(loaded_s, idle_s)
    print(f"re-embed under load / idle time: {slowdown}x; client errors during: {during['errors']}")
    return {
        "benchmark": "reembed",
        "quick": quick,
        "store": build,
        "backend": choice,
        "promotions": rows,
        "clients": {"no_promotion": baseline, "during_promotion": during},
        "loaded_over_idle_time": slowdown,
    }


def main() -> None:
    """Parse arguments, print the machine, run, optionally write JSON."""
    from benchmarks.machine import machine_record, print_machine

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--docs", type=int, help="SciFact documents in the store (default 2000)")
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_DOCS} documents")
    ap.add_argument("--json", type=Path, help="write the JSON record here")
    args = ap.parse_args()
    machine = machine_record(0.5 if args.quick else 2.0)
    print_machine(machine)
    docs = args.docs or (QUICK_DOCS if args.quick else 2000)
    record = run(args.work_dir, docs, args.quick)
    write_json(args.json, {"machine": machine} | record)


if __name__ == "__main__":
    main()

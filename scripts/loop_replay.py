"""The learning-loop replay on a BEIR dataset (docs/quality.md records its figures).

Usage:
  python scripts/loop_replay.py --data-dir DIR --dataset ../shared/data/scifact
      [--split train] [--sources labelled,synthetic] [--retrain-json '{...}']
      [--gold-as-feedback all|misses]

DIR must already hold the dataset's corpus (``ragloop ingest DATASET/corpus.jsonl``). The script
starts ``ragloop serve`` over DIR, sends every query of the split through ``POST /v1/query``;
for each whose gold document is not in the top 10 (or for every query with
``--gold-as-feedback all``) it sends ``POST /v1/feedback`` naming the gold document; then it
starts ``POST /admin/retrain`` and waits for the job, printing its progress, and finally prints
the job's report (pair counts, gate scores, timings) as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.query_load import start_server

from ragloop.eval.datasets import load_beir

TOKEN = "replay-admin"


def main() -> None:
    """Replay, feed back, retrain, report."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--sources", default="labelled,synthetic")
    ap.add_argument("--retrain-json", default="{}")
    ap.add_argument("--gold-as-feedback", choices=["misses", "all"], default="misses")
    args = ap.parse_args()
    dataset = load_beir(args.dataset, args.split)
    queries = {qid: q.text for qid, q in dataset.queries.items()}
    gold = {qid: dataset.relevant(qid) for qid in dataset.queries if dataset.relevant(qid)}
    proc, url = start_server(args.data_dir, {"RAGLOOP_ADMIN_TOKEN": TOKEN})
    admin = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            t0 = time.time()
            sent = misses = 0
            for qid, docs in gold.items():
                body = http.post("/v1/query", json={"question": queries[qid], "k": 10}).json()
                found = {s["document_id"] for s in body["sources"]}
                if found & docs and args.gold_as_feedback == "misses":
                    continue
                misses += not (found & docs)
                r = http.post(
                    "/v1/feedback",
                    json={
                        "query_id": body["query_id"],
                        "rating": "down" if not (found & docs) else "up",
                        "relevant_document_ids": sorted(docs),
                    },
                )
                r.raise_for_status()
                sent += 1
            print(
                f"replayed {len(gold)} queries in {time.time() - t0:.0f}s; "
                f"{misses} misses; feedback sent for {sent}",
                flush=True,
            )
            options = {"sources": args.sources.split(",")} | json.loads(args.retrain_json)
            t1 = time.time()
            job = http.post("/admin/retrain", json=options, headers=admin).json()
            if "id" not in job:
                raise SystemExit(f"retrain refused: {job}")
            last = ""
            while not job.get("done"):
                time.sleep(5)
                job = http.get(f"/admin/jobs/{job['id']}", headers=admin).json()
                state = f"{job['state']:12s} {job['progress']:.2f} {job['message']}"
                line = f"{time.time() - t1:6.0f}s {state}"
                if line[7:] != last:
                    print(line, flush=True)
                    last = line[7:]
            job["retrain_seconds"] = round(time.time() - t1, 1)
            print(json.dumps(job, indent=2))
    finally:
        proc.terminate()
        proc.wait(timeout=120)


if __name__ == "__main__":
    main()

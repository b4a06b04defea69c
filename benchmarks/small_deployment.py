"""A small deployment's learning loop, end to end, through the service.

Usage:
  python benchmarks/small_deployment.py --dataset ../shared/data/scifact --work /tmp/small
      [--train 60] [--test 60] [--others 150] [--retrain-json '{...}']

Builds a corpus of at most ``train + test`` questions' judged documents plus ``others`` more
(seeded), ingests it into a fresh data dir, starts ``ragloop serve``, scores the ``test``
questions (nDCG@10 through ``POST /v1/query``, service mode), replays the ``train`` questions
with feedback naming the gold document on each miss (gold not in the top 10), runs a default
retrain, scores the test questions again, and prints one JSON report: gate questions and their
origins, the decision and its reason, both recipes, the forgetting check, and test nDCG@10
before and after.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.query_load import start_server
from ragloop.eval.datasets import BeirDataset, load_beir
from ragloop.eval.metrics import evaluate_run

TOKEN = "small-admin"


def pick(
    train: BeirDataset, test: BeirDataset, n_train: int, n_test: int, others: int, seed: int
) -> tuple[list[str], list[str], list[str]]:
    """Seeded train and test question ids (judged ones) and the documents to ingest."""
    rng = random.Random(seed)
    tr = sorted(q for q in train.queries if train.relevant(q) & set(train.corpus))
    te = sorted(q for q in test.queries if test.relevant(q) & set(test.corpus))
    rng.shuffle(tr)
    rng.shuffle(te)
    tr, te = sorted(tr[:n_train]), sorted(te[:n_test])
    docs = {d for q in tr for d in train.relevant(q)} | {d for q in te for d in test.relevant(q)}
    rest = sorted(set(train.corpus) - docs)
    rng.shuffle(rest)
    return tr, te, sorted(docs | set(rest[:others]))


def ndcg(http: httpx.Client, ds: BeirDataset, qids: list[str]) -> dict[str, Any]:
    """Service-mode nDCG@10: documents in the order the service returns their chunks."""
    run = {}
    for q in qids:
        body = http.post("/v1/query", json={"question": ds.queries[q].text, "k": 10}).json()
        run[q] = list(dict.fromkeys(s["document_id"] for s in body["sources"]))
        version = body["model_version"]
    metrics = evaluate_run(run, {q: ds.qrels[q] for q in qids}, (10,), ("ndcg", "recall"))
    return {k: round(v, 4) for k, v in metrics.items()} | {"model_version": version}


def main() -> None:
    """Build, ingest, score, replay, retrain, score; print the report."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--train", type=int, default=60)
    ap.add_argument("--test", type=int, default=60)
    ap.add_argument("--others", type=int, default=150)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--retrain-json", default="{}")
    args = ap.parse_args()
    train, test = load_beir(args.dataset, "train"), load_beir(args.dataset, "test")
    tr, te, docs = pick(train, test, args.train, args.test, args.others, args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    corpus = args.work / "corpus.jsonl"
    with corpus.open("w") as fh:
        for d in docs:
            doc = train.corpus[d]
            fh.write(json.dumps({"_id": d, "title": doc.title, "text": doc.text}) + "\n")
    data = args.work / "data"
    t0 = time.time()
    subprocess.run(
        [sys.executable, "-m", "ragloop.cli.main", "ingest", str(corpus), "--data-dir", str(data)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    report: dict[str, Any] = {"documents": len(docs), "train": len(tr), "test": len(te)}
    report["ingest_seconds"] = round(time.time() - t0, 1)
    proc, url = start_server(data, {"RAGLOOP_ADMIN_TOKEN": TOKEN})
    admin = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=url, timeout=300) as http:
            report["before"] = ndcg(http, test, te)
            misses = 0
            for q in tr:
                gold = train.relevant(q)
                body = http.post("/v1/query", json={"question": train.queries[q].text, "k": 10})
                found = {s["document_id"] for s in body.json()["sources"]}
                if found & gold:
                    continue
                misses += 1
                http.post(
                    "/v1/feedback",
                    json={
                        "query_id": body.json()["query_id"],
                        "rating": "down",
                        "relevant_document_ids": sorted(gold),
                    },
                ).raise_for_status()
            report["train_misses_labelled"] = misses
            t1 = time.time()
            job = http.post(
                "/admin/retrain", json=json.loads(args.retrain_json), headers=admin
            ).json()
            if "id" not in job:
                raise SystemExit(f"retrain refused: {job}")
            while not job.get("done"):
                time.sleep(5)
                job = http.get(f"/admin/jobs/{job['id']}", headers=admin).json()
                print(f"{time.time() - t1:6.0f}s {job['state']} {job['message']}", flush=True)
            report["retrain_seconds"] = round(time.time() - t1, 1)
            report["job_state"] = job["state"]
            gate = job["result"].get("gate", {})
            report["gate"] = {
                k: gate.get(k)
                for k in (
                    "n_queries",
                    "question_origins",
                    "promote",
                    "reason",
                    "delta",
                    "delta_lower_bound",
                    "current_recipe",
                    "candidate_recipe",
                    "recipes",
                    "forgetting",
                )
            }
            report["manifest"] = job["result"].get("manifest")
            time.sleep(2)  # the server follows the active pointer
            report["after"] = ndcg(http, test, te)
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

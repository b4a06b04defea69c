"""Calibrate the ``low_score`` miss threshold on a BEIR dataset ingested into a data dir.

Usage:
  python scripts/calibrate_miss_threshold.py --data-dir DIR \
      --dataset ../shared/data/scifact --split train

For every query of the split it retrieves the top 10 chunks and records the top-1 cosine
score and whether any gold document was among the top 10 (a retrieval "hit"). It prints the
score distribution of hits and misses and, for candidate thresholds, how many real misses a
``top score < threshold`` rule would flag (recall) and how many of its flags are real misses
(precision). See docs/service.md for how the default was chosen from this.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ragloop.core.retriever import search
from ragloop.core.runtime import open_runtime
from ragloop.core.settings import load_settings
from ragloop.eval.datasets import load_beir


def main() -> None:
    """Print the calibration table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--split", default="train")
    args = ap.parse_args()
    dataset = load_beir(args.dataset, args.split)
    queries = {qid: q.text for qid, q in dataset.queries.items()}
    gold = {qid: dataset.relevant(qid) for qid in dataset.queries if dataset.relevant(qid)}
    rt = open_runtime(load_settings(data_dir=args.data_dir))
    index = rt.active_index()
    scores, hit = [], []
    for qid, docs in gold.items():
        hits = search(index, rt.store, rt.catalog, queries[qid], k=10)
        scores.append(hits[0].score if hits else 0.0)
        hit.append(any(h.chunk.document_id in docs for h in hits))
    s, h = np.array(scores), np.array(hit)
    print(f"{len(s)} queries; retrieval misses (no gold doc in top 10): {int((~h).sum())}")
    for label, part in (("hits", s[h]), ("misses", s[~h])):
        q = np.percentile(part, [10, 25, 50, 75, 90]).round(3)
        print(f"top-1 score of {label:6s}: p10 {q[0]} p25 {q[1]} p50 {q[2]} p75 {q[3]} p90 {q[4]}")
    print("threshold  flagged  miss-recall  miss-precision")
    for t in np.arange(0.20, 0.56, 0.05):
        flag = s < t
        rec = (flag & ~h).sum() / max((~h).sum(), 1)
        prec = (flag & ~h).sum() / max(flag.sum(), 1)
        print(f"{t:9.2f}  {flag.mean():7.1%}  {rec:11.1%}  {prec:14.1%}")
    rt.close()


if __name__ == "__main__":
    main()

"""How well the automatic miss flags find real retrieval misses on a BEIR dataset.

A question is a real miss when none of its gold documents is in the top ``k`` (default 10) of
the served retrieval (the data dir's mode, hybrid by default). Each question goes through the
same code the service runs, in process: ``core.retriever.search`` with the side rankings, the
version's calibrated thresholds (``core.calibration``; calibrated here first if the version has
none), ``core.miss_flags``, and the extractive generator for the ``no_answer`` signal (the
offline default; an LLM abstains differently). Reported per signal and for their union:
how many questions it flags, precision (flags that are real misses) and recall (real misses
flagged).

Usage::

    python -m benchmarks.miss_flags --dataset ../shared/data/scifact --split train
    python -m benchmarks.miss_flags --dataset benchmarks/data/faq-tools --split test \\
        --data-dir /tmp/faq-data   # reuse an ingested data dir

Without ``--data-dir`` the corpus is ingested into a temporary one (minutes for SciFact on
2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import dataset_runtime
from ragloop.core.calibration import Calibrations
from ragloop.core.generators.base import Context
from ragloop.core.generators.extractive import ExtractiveGenerator
from ragloop.core.miss_flags import RETRIEVAL_REASONS, retrieval_reasons
from ragloop.core.retriever import SideRankings, search
from ragloop.core.runtime import Runtime
from ragloop.eval.datasets import load_beir

SIGNALS = (*RETRIEVAL_REASONS, "no_answer")


def score(flags: Sequence[bool], misses: Sequence[bool]) -> dict[str, Any]:
    """Flag share, precision and recall of one signal against the real misses."""
    tp = sum(f and m for f, m in zip(flags, misses, strict=True))
    n_flags, n_miss = sum(flags), sum(misses)
    return {
        "flagged": n_flags,
        "flag_share": round(n_flags / max(len(flags), 1), 4),
        "precision": round(tp / n_flags, 4) if n_flags else None,
        "recall": round(tp / n_miss, 4) if n_miss else None,
    }


def run(rt: Runtime, dataset: Path, split: str, k: int) -> dict[str, Any]:
    """Every judged question of the split through retrieval and the miss logic."""
    data = load_beir(dataset, split)
    index = rt.active_index()
    started = time.perf_counter()
    thresholds = Calibrations(rt).thresholds(index)
    calibrate_s = time.perf_counter() - started
    index = rt.refresh()  # the version now carries its calibration
    generator = ExtractiveGenerator()
    rows: list[tuple[bool, list[str]]] = []
    for qid, query in data.queries.items():
        gold = data.relevant(qid)
        if not gold:
            continue
        sides = SideRankings()
        hits = search(index, rt.store, rt.catalog, query.text, k, sides=sides)
        reasons = retrieval_reasons(hits, sides, thresholds)
        contexts = [
            Context(
                i,
                h.chunk.id,
                h.chunk.document_id,
                h.document_title,
                h.source,
                h.chunk.text,
                h.score,
            )
            for i, h in enumerate(hits[:5], start=1)  # what the service hands by default
        ]
        if generator.generate(query.text, contexts).no_answer:
            reasons.append("no_answer")
        miss = not any(h.chunk.document_id in gold for h in hits)
        rows.append((miss, reasons))
    misses = [miss for miss, _ in rows]
    signals = {s: score([s in r for _, r in rows], misses) for s in SIGNALS}
    signals["any"] = score([bool(r) for _, r in rows], misses)
    signals["any retrieval"] = score(
        [any(x in RETRIEVAL_REASONS for x in r) for _, r in rows], misses
    )
    return {
        "dataset": str(dataset),
        "split": split,
        "k": k,
        "mode": index.retrieval,
        "model_version": index.version.version,
        "questions": len(rows),
        "real_misses": sum(misses),
        "base_rate": round(sum(misses) / max(len(rows), 1), 4),
        "thresholds": thresholds.__dict__,
        "calibration": index.version.miss_calibration,
        "calibrate_s": round(calibrate_s, 2),
        "signals": signals,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, ingest when needed, print the table (and JSON with --out)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    with dataset_runtime(args.dataset, args.data_dir, "miss-flags-") as rt:
        result = run(rt, args.dataset, args.split, args.k)
    print(
        f"{result['questions']} questions, {result['real_misses']} real misses "
        f"(gold not in top {result['k']}, {result['mode']}); thresholds {result['thresholds']}"
    )
    print(f"{'signal':15s} {'flagged':>8s} {'precision':>10s} {'recall':>8s}")
    for name, s in result["signals"].items():
        p = "-" if s["precision"] is None else f"{s['precision']:.3f}"
        r = "-" if s["recall"] is None else f"{s['recall']:.3f}"
        print(f"{name:15s} {s['flagged']:8d} {p:>10s} {r:>8s}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

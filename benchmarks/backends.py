"""Embedding backends side by side: speed, closeness to fp32, and SciFact nDCG@10.

Usage:
  python -m benchmarks.backends [--dataset ../shared/data/scifact] [--sample 512]
      [--limit-docs N] [--paths torch-fp32,torch-bf16,onnx-fp32,onnx-int8] [--json]

For each path (torch fp32, torch bf16 weights, ONNX Runtime fp32, ONNX Runtime int8) on the
bundled all-MiniLM-L6-v2: chunks/s over a sample of corpus texts at the model's 256-token
limit (batches of 32, as ingest sends them), the min and mean cosine of those vectors to torch
fp32, and SciFact test nDCG@10 in model mode (exact search, fp32 reference first). A path
passes when its min cosine keeps the threshold the automatic choice uses (0.999 bf16 and ONNX
fp32, 0.99 int8) and its nDCG@10 is within 0.005 of fp32. ``--limit-docs N`` scores against
the judged documents plus N others (quick runs; not comparable with published figures). ONNX
exports go into a temporary directory unless ``--cache-dir`` names one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PATHS = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")
NDCG_TOLERANCE = 0.005
BATCH = 32


def _load(path: str, cache: Path):  # type: ignore[no-untyped-def]
    from ragloop.core.embedding.backends import load_model_dir
    from ragloop.core.embedding.base import EmbedderOptions
    from ragloop.core.embedding.torch_embedder import BUNDLED_NAMES, bundled_model_path

    backend, precision = path.split("-")
    opts = EmbedderOptions("cpu", precision, backend, cache)
    return load_model_dir(bundled_model_path(), opts, model_id=BUNDLED_NAMES[0])


def _limit(dataset, n: int):  # type: ignore[no-untyped-def]
    judged = {d for q in dataset.queries for d in dataset.qrels.get(q, {})}
    keep = [d for d in dataset.corpus if d in judged]
    keep += [d for d in dataset.corpus if d not in judged][:n]
    return dataclasses.replace(dataset, corpus={d: dataset.corpus[d] for d in keep})


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print a table (or JSON); exit 1 when a path fails its checks."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--sample", type=int, default=512, help="corpus texts timed per path")
    parser.add_argument("--limit-docs", type=int, default=None)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from ragloop.core.embedding.backends import THRESHOLDS
    from ragloop.core.embedding.hardware import cpu_has_native_bf16
    from ragloop.eval.datasets import load_beir
    from ragloop.eval.model_mode import evaluate_model

    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths {sorted(unknown)}; choose from {', '.join(PATHS)}")
    if "torch-fp32" not in paths:
        paths.insert(0, "torch-fp32")  # the reference every other path is compared with
    paths.sort(key=PATHS.index)
    dataset = load_beir(args.dataset, args.split)
    if args.limit_docs is not None:
        dataset = _limit(dataset, args.limit_docs)
    texts = [doc.embedding_input for doc in list(dataset.corpus.values())[: args.sample]]
    tmp = tempfile.TemporaryDirectory(prefix="ragloop-backends-")
    cache = args.cache_dir or Path(tmp.name)

    rows: list[dict[str, object]] = []
    ref_vecs: np.ndarray | None = None
    ref_ndcg = 0.0
    for path in paths:
        t0 = time.perf_counter()
        emb = _load(path, cache)
        load_s = time.perf_counter() - t0
        tokens = emb.count_tokens(texts)
        # Warm-up over the whole sample: a fresh process builds kernels for every new shape,
        # and one batch of warm-up left torch fp32's timing at a third of its steady speed.
        emb.embed_many(texts, is_query=False, batch_size=BATCH)
        t0 = time.perf_counter()
        vecs = emb.embed_many(texts, is_query=False, batch_size=BATCH)
        rate = len(texts) / (time.perf_counter() - t0)
        if ref_vecs is None:
            ref_vecs = vecs
        cos = (vecs * ref_vecs).sum(axis=1)
        report = evaluate_model(emb, dataset, label=path)
        ndcg = float(report.metrics["ndcg@10"])
        if path == "torch-fp32":
            ref_ndcg = ndcg
        cos_ok = float(cos.min()) >= THRESHOLDS[path]
        ndcg_ok = abs(ndcg - ref_ndcg) <= NDCG_TOLERANCE
        rows.append(
            {
                "path": path,
                "chunks_per_s": round(rate, 1),
                "speedup": 1.0,
                "cosine_min": round(float(cos.min()), 5),
                "cosine_mean": round(float(cos.mean()), 5),
                "cosine_threshold": THRESHOLDS[path],
                "ndcg@10": round(ndcg, 4),
                "ndcg_delta": round(ndcg - ref_ndcg, 4),
                "cosine_pass": cos_ok,
                "ndcg_pass": ndcg_ok,
                "pass": cos_ok and ndcg_ok,
                "load_s": round(load_s, 1),
                "eval_s": round(sum(report.seconds.values()), 1),
            }
        )
        del emb
    base = float(rows[0]["chunks_per_s"])  # type: ignore[arg-type]
    for row in rows:
        row["speedup"] = round(float(row["chunks_per_s"]) / base, 2)  # type: ignore[arg-type]
    result = {
        "dataset": str(args.dataset),
        "split": args.split,
        "n_documents": len(dataset.corpus),
        "n_queries": len(dataset.queries),
        "limit_docs": args.limit_docs,
        "sample_texts": len(texts),
        "sample_mean_tokens": round(float(np.mean(np.minimum(tokens, 254))), 1),
        "batch": BATCH,
        "cpu": platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)),
        "native_bf16": cpu_has_native_bf16(),
        "ndcg_tolerance": NDCG_TOLERANCE,
        "rows": rows,
    }
    tmp.cleanup()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"SciFact {args.split}: {result['n_documents']} docs, {result['n_queries']} queries; "
            f"speed on {len(texts)} texts (mean {result['sample_mean_tokens']} content tokens, "
            f"cap 254), batches of {BATCH}, {result['cores']} cores"
        )
        print(
            f"{'path':<11} {'chunks/s':>8} {'x':>5} {'cos min':>8} {'cos mean':>8} "
            f"{'nDCG@10':>8} {'delta':>7}  verdict"
        )
        for r in rows:
            why = []
            if not r["cosine_pass"]:
                why.append(f"cos min < {r['cosine_threshold']}")
            if not r["ndcg_pass"]:
                why.append(f"|delta| > {NDCG_TOLERANCE}")
            verdict = "PASS" if r["pass"] else "FAIL (" + "; ".join(why) + ")"
            print(
                f"{r['path']:<11} {r['chunks_per_s']:>8} {r['speedup']:>5} "
                f"{r['cosine_min']:>8.5f} {r['cosine_mean']:>8.5f} {r['ndcg@10']:>8.4f} "
                f"{r['ndcg_delta']:>+7.4f}  {verdict}"
            )
    return 0 if all(r["pass"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

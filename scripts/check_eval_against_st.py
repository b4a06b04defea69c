"""Compare ``ragloop eval`` model mode with sentence-transformers' InformationRetrievalEvaluator.

Both sides load the same bundled all-MiniLM-L6-v2, read the same BEIR split through our loader,
encode documents as ``title\\ntext`` and run at the same precision: ``fp32`` as the evaluator
runs by default, or ``bf16`` with the evaluator wrapped in the same CPU autocast our embedder
uses. Prints one JSON object: both sets of metrics, their largest difference, and wall times.

    .venv/bin/python scripts/check_eval_against_st.py --dataset ../shared/data/scifact \\
        --split test --precision fp32
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

KS = [1, 3, 5, 10, 100]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import torch
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    from ragloop.core.embedding.base import EmbedderOptions, default_registry
    from ragloop.core.embedding.torch_embedder import SentenceTransformerEmbedder
    from ragloop.eval.datasets import load_beir
    from ragloop.eval.model_mode import evaluate_model

    data = load_beir(args.dataset, args.split)
    embedder = default_registry().load(args.model, EmbedderOptions(precision=args.precision))
    if not isinstance(embedder, SentenceTransformerEmbedder):
        parser.error(f"{args.model} is not a sentence-transformers model")

    t0 = time.perf_counter()
    ours = evaluate_model(embedder, data, ks=KS, batch_size=args.batch_size).metrics
    t_ours = time.perf_counter() - t0

    evaluator = InformationRetrievalEvaluator(
        queries={q.id: q.text for q in data.queries.values()},
        corpus={d.id: d.embedding_input for d in data.corpus.values()},
        relevant_docs={q: data.relevant(q) for q in data.queries},
        mrr_at_k=KS,
        ndcg_at_k=KS,
        accuracy_at_k=KS,
        precision_recall_at_k=KS,
        map_at_k=[100],
        batch_size=args.batch_size,
        write_csv=False,
    )
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if args.precision == "bf16"
        else contextlib.nullcontext()
    )
    t0 = time.perf_counter()
    with torch.inference_mode(), autocast:
        raw = evaluator(embedder.model)
    t_st = time.perf_counter() - t0
    theirs = {k.removeprefix("cosine_"): float(v) for k, v in raw.items()}

    # MAP@k is compared at 100 only: sentence-transformers divides by min(k, relevant) and
    # trec_eval (ours) by all relevant, which differ only for queries with more than k.
    shared = [n for n in ours if n in theirs and (not n.startswith("map@") or n == "map@100")]
    diffs = {n: abs(ours[n] - theirs[n]) for n in shared}
    worst = max(diffs, key=diffs.__getitem__)
    result = {
        "dataset": data.name,
        "split": data.split,
        "queries": len(data.queries),
        "documents": len(data.corpus),
        "precision": args.precision,
        "ours": {n: round(ours[n], 6) for n in shared},
        "sentence_transformers": {n: round(theirs[n], 6) for n in shared},
        "ndcg@10": {"ours": ours["ndcg@10"], "st": theirs["ndcg@10"]},
        "max_abs_diff": {"metric": worst, "value": diffs[worst]},
        "seconds": {"ours": round(t_ours, 1), "sentence_transformers": round(t_st, 1)},
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

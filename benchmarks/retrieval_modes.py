"""Dense, BM25 and RRF-fused retrieval quality on one BEIR dataset, from one corpus encoding.

A reference point for the hybrid retriever: on a corpus whose questions paraphrase their answers
(``benchmarks/faq_corpus.py``), lexical matching should add little, so fusion must not lose to
dense alone. Everything runs over the whole corpus with exact search, as ``ragloop eval``'s
model mode does:

- dense: the embedder (default: the configured base model) over ``title\\ntext``, truncated at
  its max sequence length, exact cosine search;
- bm25: Okapi BM25 over lowercase alphanumeric tokens of the same ``title\\ntext`` (Anserini's
  BEIR defaults k1=0.9, b=0.4; no stemming, no stop words);
- rrf: reciprocal rank fusion of the two top-100 lists, score = sum of 1 / (k + rank), k=60.

Vectors are cached (``--cache``) keyed by model, texts and max sequence length, so reruns and
other fusion settings cost no encoding. The RRF-minus-dense difference in nDCG@10 comes with a
paired bootstrap 95% interval over queries.

Usage::

    python -m benchmarks.retrieval_modes --dataset benchmarks/data/faq-tools --by-source
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CACHE = Path(__file__).resolve().parent / "data" / "cache"
DEPTH = 100
KS = (1, 3, 5, 10, 100)
SHOWN = ("ndcg@10", "mrr@10", "recall@10", "recall@100")
_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lowercase alphanumeric runs: what the plain BM25 baseline matches on."""
    return _TOKEN.findall(text.lower())


class BM25:
    """Okapi BM25 with Lucene's non-negative idf, exact scoring over a small in-memory corpus."""

    def __init__(
        self, ids: Sequence[str], texts: Sequence[str], k1: float = 0.9, b: float = 0.4
    ) -> None:
        self.ids = list(ids)
        self.k1, self.b = k1, b
        self.docs = [Counter(tokenize(t)) for t in texts]
        self.lengths = np.array([sum(c.values()) for c in self.docs], dtype=np.float64)
        self.avg_len = float(self.lengths.mean()) if len(self.docs) else 0.0
        df: Counter[str] = Counter()
        for counts in self.docs:
            df.update(counts.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1.0 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        # Postings: term -> (document rows, term frequencies), for scoring only matching rows.
        rows: dict[str, list[int]] = {}
        tfs: dict[str, list[int]] = {}
        for row, counts in enumerate(self.docs):
            for term, tf in counts.items():
                rows.setdefault(term, []).append(row)
                tfs.setdefault(term, []).append(tf)
        self.postings = {t: (np.array(rows[t]), np.array(tfs[t], dtype=np.float64)) for t in rows}

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (a repeated query term counts again)."""
        out = np.zeros(len(self.ids), dtype=np.float64)
        norm = self.k1 * (1.0 - self.b + self.b * self.lengths / (self.avg_len or 1.0))
        for term in tokenize(query):
            if term not in self.postings:
                continue
            rows, tf = self.postings[term]
            out[rows] += self.idf[term] * tf * (self.k1 + 1.0) / (tf + norm[rows])
        return out

    def search(self, query: str, k: int) -> list[str]:
        """Ids of the top ``k`` documents with a positive score, ties by ascending id."""
        scores = self.scores(query)
        hit = np.flatnonzero(scores > 0)
        order = sorted(hit, key=lambda i: (-scores[i], self.ids[i]))[:k]
        return [self.ids[i] for i in order]


def rrf(rankings: Sequence[Sequence[str]], k: int = 60, depth: int = DEPTH) -> list[str]:
    """Reciprocal rank fusion of ranked id lists, best first, ties by ascending id."""
    score: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            score[doc] = score.get(doc, 0.0) + 1.0 / (k + rank)
    return [d for d, _ in sorted(score.items(), key=lambda x: (-x[1], x[0]))][:depth]


def encode(
    model: str, doc_texts: Sequence[str], query_texts: Sequence[str], cache: Path, batch: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """Document and query vectors (unit length) from the cache, or encoded once and cached."""
    from ragloop.core.settings import load_settings
    from ragloop.eval.evaluators import ModelSource

    # fp32, as `ragloop eval --mode model` measures the model rather than a fast path; the
    # loader is the one `ragloop eval` uses, so a model reference means the same here.
    settings = load_settings(precision="fp32")
    source = ModelSource(settings)
    try:
        embedder = source.load(model or settings.embedder)
    finally:
        source.close()
    digest = hashlib.sha256()
    for part in (embedder.model_id, str(embedder.max_seq_length), *doc_texts, "\0", *query_texts):
        digest.update(part.encode("utf-8") + b"\0")
    path = cache / f"{digest.hexdigest()[:20]}.npz"
    if path.is_file():
        with np.load(path) as saved:
            return saved["docs"], saved["queries"], embedder.model_id
    docs = embedder.embed_many(doc_texts, is_query=False, batch_size=batch)
    queries = embedder.embed_many(query_texts, is_query=True, batch_size=batch)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, docs=docs, queries=queries)
    return docs, queries, embedder.model_id


def bootstrap_diff(
    a: Sequence[float], b: Sequence[float], rounds: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired queries and its percentile 95% interval."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(rounds, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def source_of(query_id: str) -> str:
    """The FAQ a ``faq_corpus`` query id names (``q-zsh-3.4`` -> ``zsh``)."""
    parts = query_id.split("-")
    return parts[1] if len(parts) > 2 and parts[0] == "q" else "all"


def mean_metrics(scores: Mapping[str, Mapping[str, float]], ids: Sequence[str]) -> dict[str, float]:
    """Mean of each shown metric over ``ids``."""
    return {m: float(np.mean([scores[q][m] for q in ids])) if ids else 0.0 for m in SHOWN}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Score the three modes; returns the JSON-ready result."""
    import torch

    from ragloop.eval.datasets import load_beir
    from ragloop.eval.metrics import per_query
    from ragloop.eval.search import ExactIndex

    torch.set_num_threads(args.threads)  # the machine is shared; one core is plenty here
    data = load_beir(args.dataset, args.split)
    doc_ids = list(data.corpus)
    doc_texts = [data.corpus[d].embedding_input for d in doc_ids]
    query_ids = list(data.queries)
    query_texts = [data.queries[q].text for q in query_ids]
    doc_vecs, query_vecs, model_id = encode(
        args.model, doc_texts, query_texts, args.cache, args.batch_size
    )
    dense_hits = ExactIndex(doc_ids, doc_vecs).search(query_vecs, DEPTH)
    dense = {q: [d for d, _ in hits] for q, hits in zip(query_ids, dense_hits, strict=True)}
    bm25_index = BM25(doc_ids, doc_texts, k1=args.k1, b=args.b)
    bm25 = {q: bm25_index.search(t, DEPTH) for q, t in zip(query_ids, query_texts, strict=True)}
    fused = {q: rrf([dense[q], bm25[q]], k=args.rrf_k) for q in query_ids}
    runs = {"dense": dense, "bm25": bm25, "rrf": fused}
    scores = {name: per_query(r, data.qrels, KS) for name, r in runs.items()}
    groups: dict[str, list[str]] = {"all": query_ids}
    if args.by_source:
        for q in query_ids:
            groups.setdefault(source_of(q), []).append(q)
    table = {
        group: {name: mean_metrics(scores[name], ids) for name in runs}
        for group, ids in groups.items()
    }
    diff, low, high = bootstrap_diff(
        [scores["rrf"][q]["ndcg@10"] for q in query_ids],
        [scores["dense"][q]["ndcg@10"] for q in query_ids],
    )
    if args.runs_dir:
        args.runs_dir.mkdir(parents=True, exist_ok=True)
        for name, r in runs.items():
            with (args.runs_dir / f"{name}.trec").open("w", encoding="utf-8") as fh:
                for q in query_ids:
                    for rank, d in enumerate(r[q], start=1):
                        fh.write(f"{q} Q0 {d} {rank} {1.0 / rank:.6f} {name}\n")
    return {
        "dataset": data.name,
        "split": data.split,
        "documents": len(doc_ids),
        "queries": len(query_ids),
        "model": model_id,
        "bm25": {"k1": args.k1, "b": args.b},
        "rrf_k": args.rrf_k,
        "groups": {g: len(ids) for g, ids in groups.items()},
        "metrics": table,
        "rrf_minus_dense_ndcg@10": {"mean": diff, "ci95": [low, high]},
    }


def print_table(result: Mapping[str, Any]) -> None:
    """A plain-text table per group, then the fusion difference."""
    print(
        f"{result['dataset']} ({result['split']}): {result['queries']} queries, "
        f"{result['documents']} documents; model {result['model']}"
    )
    for group, by_mode in result["metrics"].items():
        print(f"\n[{group}: {result['groups'][group]} queries]")
        print(f"{'mode':<8}" + "".join(f"{m:>12}" for m in SHOWN))
        for mode, values in by_mode.items():
            print(f"{mode:<8}" + "".join(f"{values[m]:>12.4f}" for m in SHOWN))
    d = result["rrf_minus_dense_ndcg@10"]
    print(
        f"\nrrf - dense nDCG@10: {d['mean']:+.4f} "
        f"(paired bootstrap 95% CI {d['ci95'][0]:+.4f} .. {d['ci95'][1]:+.4f})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="", help="embedder (default: RAGLOOP_EMBEDDER)")
    parser.add_argument("--k1", type=float, default=0.9)
    parser.add_argument("--b", type=float, default=0.4)
    parser.add_argument("--rrf-k", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="vector cache folder")
    parser.add_argument("--runs-dir", type=Path, help="also write TREC run files here")
    parser.add_argument(
        "--by-source", action="store_true", help="also score each FAQ of a faq_corpus set"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = run(args)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

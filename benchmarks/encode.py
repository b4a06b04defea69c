"""Encode throughput at 256 tokens: ragloop's embedder and the LangChain peer, as a share of the
bf16 matmul peak measured in the same run.

Usage:
  python -m benchmarks.encode [--chunks 512] [--work-dir /tmp/ragloop-bench] [--quick] [--json PATH]

Inputs are real SciFact abstracts cut to exactly 254 content tokens (256 with [CLS] and [SEP],
the model's limit), so every batch is full length and the FLOP count per chunk is exact.
ragloop encodes them as ingest does (``embed_documents`` in ``RAGLOOP_EMBED_BATCH_SIZE``
batches) with whatever backend and precision it chose for this machine; the peer is
``HuggingFaceEmbeddings`` on the same model at the matching torch precision. Goal: ragloop at
>= 60% of the bf16 peak.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    DEFAULT_WORK_DIR,
    backend_choice,
    corpus_file,
    embedder_info,
    peer_precision,
    print_table,
    ragloop_embedder,
    write_json,
)

CONTENT_TOKENS = 254  # + [CLS] + [SEP] = 256, all-MiniLM-L6-v2's max_seq_length


def texts_of_exact_length(n: int, tokens: int = CONTENT_TOKENS) -> list[str]:
    """``n`` SciFact texts (title + abstract) cut at a token boundary to exactly ``tokens``.

    Cut by the tokenizer's character offsets, then re-counted: a prefix can tokenize
    differently at its new end, and such texts are skipped rather than padded.
    """
    from transformers import AutoTokenizer

    from ragloop.core.embedding.torch_embedder import bundled_model_path
    from ragloop.eval.datasets import load_corpus

    tok = AutoTokenizer.from_pretrained(str(bundled_model_path()), local_files_only=True)
    out: list[str] = []
    for doc in load_corpus(corpus_file("scifact")).values():
        text = doc.embedding_input
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        if len(enc["input_ids"]) < tokens:
            continue
        cut = text[: enc["offset_mapping"][tokens - 1][1]]
        if len(tok(cut, add_special_tokens=False, verbose=False)["input_ids"]) == tokens:
            out.append(cut)
            if len(out) == n:
                return out
    raise RuntimeError(f"SciFact has fewer than {n} texts of {tokens}+ tokens")


def time_ragloop(embedder: Any, texts: list[str], batch: int) -> float:
    """Seconds for ragloop's embedder to encode ``texts`` in ingest-sized batches."""
    embedder.embed_documents(texts[:batch])  # warm-up: first-call kernel setup
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        embedder.embed_documents(texts[i : i + batch])
    return time.perf_counter() - started


def time_langchain(texts: list[str], precision: str) -> float:
    """Seconds for HuggingFaceEmbeddings (same model, same precision) on the same texts."""
    import contextlib

    import torch
    from langchain_huggingface import HuggingFaceEmbeddings

    from ragloop.core.embedding.torch_embedder import bundled_model_path

    emb = HuggingFaceEmbeddings(
        model_name=str(bundled_model_path()),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )
    ctx = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if precision == "bf16"
        else contextlib.nullcontext()
    )
    with ctx:
        emb.embed_documents(texts[:32])
        started = time.perf_counter()
        emb.embed_documents(texts)
        return time.perf_counter() - started


def run(machine: dict[str, Any], work: Path, chunks: int) -> dict[str, Any]:
    """Both encoders on the same texts; the record, with shares of the measured peaks."""
    from benchmarks.machine import encoder_flops
    from ragloop.core.settings import load_settings

    data_dir = work / "encode"
    texts = texts_of_exact_length(chunks)
    embedder = ragloop_embedder(data_dir)
    info = embedder_info(embedder) | {"choice": backend_choice(data_dir)}
    precision = peer_precision(info["choice"])
    batch = load_settings(data_dir=data_dir).embed_batch_size
    gflop = encoder_flops(256) / 1e9
    rows = []
    for side, seconds, how in (
        (
            "ragloop",
            time_ragloop(embedder, texts, batch),
            f"{info['choice']['backend']} {info['choice']['precision']}, batch {batch}",
        ),
        ("langchain", time_langchain(texts, precision), f"torch {precision}, batch 32"),
    ):
        rate = len(texts) / seconds
        rows.append(
            {
                "side": side,
                "path": how,
                "chunks": len(texts),
                "seconds": round(seconds, 2),
                "chunks/s": round(rate, 1),
                "GFLOP/s": round(rate * gflop, 1),
                "% bf16 peak": round(100 * rate * gflop / machine["bf16_matmul_gflops"], 1),
                "% fp32 peak": round(100 * rate * gflop / machine["fp32_matmul_gflops"], 1),
            }
        )
    print_table(
        f"encode at 256 tokens ({gflop:.2f} GFLOP per chunk; bf16 peak "
        f"{machine['bf16_matmul_gflops']} GFLOP/s measured this run)",
        rows,
        ["side", "path", "chunks", "seconds", "chunks/s", "GFLOP/s", "% bf16 peak", "% fp32 peak"],
    )
    print(
        f"ragloop/langchain encode: {rows[0]['chunks/s'] / rows[1]['chunks/s']:.2f}x; "
        f"ragloop at {rows[0]['% bf16 peak']}% of the bf16 peak (goal >= 60%)"
    )
    return {"benchmark": "encode", "ragloop_embedder": info, "rows": rows}


def main() -> None:
    """Parse arguments, print the machine, run, optionally write JSON."""
    from benchmarks.machine import machine_record, print_machine

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--chunks", type=int, default=512)
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    ap.add_argument("--quick", action="store_true", help="64 chunks")
    ap.add_argument("--json", type=Path, help="write the JSON record here")
    args = ap.parse_args()
    machine = machine_record(0.5 if args.quick else 2.0)
    print_machine(machine)
    record = run(machine, args.work_dir, 64 if args.quick else args.chunks)
    write_json(args.json, {"machine": machine} | record)


if __name__ == "__main__":
    main()

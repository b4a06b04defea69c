"""The machine a benchmark ran on: cores, CPU flags, torch threads and measured matmul peaks.

Usage:
  python -m benchmarks.machine [--seconds 2] [--json PATH]

The bf16 and fp32 GFLOP/s are measured in this run (square torch matmuls for about
``--seconds`` each) rather than taken from a data sheet: the cores are shared and may be
throttled, and "encode as a share of the peak" only means something against the peak the same
machine reached at the same time. The MiniLM FLOP count per chunk comes from the model's own
config so the share can be computed for any sequence length.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from benchmarks.common import print_table, write_json

FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8")


def cpu_info() -> dict[str, Any]:
    """CPU model, logical cores usable by this process, and the flags that matter for matmul."""
    model, flags = platform.processor() or "unknown", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "flags": {f: f in flags for f in FLAGS},
    }


def matmul_gflops(dtype_name: str, n: int = 2048, seconds: float = 2.0) -> float:
    """Sustained GFLOP/s of ``n`` x ``n`` matmuls in ``dtype_name`` (bf16 or fp32).

    Native bf16 tensors (not autocast) measure the kernel's peak; one warm-up call keeps
    oneDNN's first-call setup out of the figure.
    """
    import torch

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dtype)
    b = torch.randn(n, n, generator=gen).to(dtype)
    with torch.inference_mode():
        torch.mm(a, b)
        calls, started = 0, time.perf_counter()
        while True:
            torch.mm(a, b)
            calls += 1
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                break
    return 2.0 * n**3 * calls / elapsed / 1e9


def encoder_flops(tokens: int, config: dict[str, Any] | None = None) -> float:
    """Forward FLOPs of one ``tokens``-long input through a BERT-like encoder.

    Per layer: the Q, K, V and output projections (4 h^2 multiply-adds per token), the
    feed-forward pair (2 h i), and attention's two s x s x h products (scores and the weighted
    sum). Embedding lookups, layer norms, softmax and pooling are a rounding error next to
    these and are left out, so the figure is a slight undercount (the share of peak slightly
    flatters nobody).
    """
    cfg = config or bundled_model_config()
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    linear = 2 * tokens * (4 * h * h + 2 * h * inter)
    attention = 2 * 2 * tokens * tokens * h
    return float(layers * (linear + attention))


def bundled_model_config() -> dict[str, Any]:
    """config.json of the bundled all-MiniLM-L6-v2."""
    from ragloop.core.embedding.torch_embedder import bundled_model_path

    config: dict[str, Any] = json.loads((bundled_model_path() / "config.json").read_text())
    return config


def machine_record(seconds: float = 2.0) -> dict[str, Any]:
    """Everything above as one JSON-ready dictionary."""
    import torch

    cfg = bundled_model_config()
    params = _param_count()
    rec = cpu_info() | {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "bf16_matmul_gflops": round(matmul_gflops("bf16", seconds=seconds), 1),
        "fp32_matmul_gflops": round(matmul_gflops("fp32", seconds=seconds), 1),
        "minilm": {
            "parameters": params,
            "layers": cfg["num_hidden_layers"],
            "hidden": cfg["hidden_size"],
            "gflop_per_256_token_chunk": round(encoder_flops(256, cfg) / 1e9, 3),
        },
    }
    try:
        from ragloop.core.embedding.hardware import cpu_has_native_bf16

        rec["ragloop_sees_native_bf16"] = cpu_has_native_bf16()
    except ImportError:  # a backend rewrite may move it; the flags above still tell
        pass
    return rec


def _param_count() -> int:
    """Weights of the bundled model, counted from its safetensors header (no model load)."""
    from ragloop.core.embedding.torch_embedder import bundled_model_path

    path = bundled_model_path() / "model.safetensors"
    with path.open("rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
    total = 0
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in meta["shape"]:
            count *= dim
        total += count
    return total


def print_machine(rec: dict[str, Any]) -> None:
    """The machine record as a short block of lines."""
    flags = " ".join(f for f, on in rec["flags"].items() if on) or "none of " + " ".join(FLAGS)
    print("\n== machine")
    print(f"cpu: {rec['cpu_model']}, {rec['usable_cores']} usable of {rec['logical_cores']} cores")
    print(f"flags: {flags}")
    print(f"python {rec['python']}, torch {rec['torch']}, {rec['torch_threads']} torch threads")
    rows = [
        {"dtype": "bf16", "GFLOP/s (2048^2 matmul)": rec["bf16_matmul_gflops"]},
        {"dtype": "fp32", "GFLOP/s (2048^2 matmul)": rec["fp32_matmul_gflops"]},
    ]
    print_table("matmul peak, measured now", rows, ["dtype", "GFLOP/s (2048^2 matmul)"])
    m = rec["minilm"]
    print(
        f"MiniLM: {m['parameters']:,} parameters, {m['layers']} layers x {m['hidden']}; "
        f"{m['gflop_per_256_token_chunk']} GFLOP per 256-token chunk"
    )


def main() -> None:
    """Measure and print the machine; optionally write JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="per matmul measurement")
    ap.add_argument("--quick", action="store_true", help="0.5 s per measurement")
    ap.add_argument("--json", type=Path, help="write the record here")
    args = ap.parse_args()
    rec = machine_record(0.5 if args.quick else args.seconds)
    print_machine(rec)
    write_json(args.json, rec)


if __name__ == "__main__":
    main()

"""Helpers shared by the benchmark scripts: data paths, subprocess timing, tables, JSON records.

Every benchmark prints a plain-text table for people and can write one JSON record for
``benchmarks/run_all.py``; both come from the same dictionaries so they cannot disagree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: The evaluation data sit beside the repository (``../shared/data``); never copied into it.
DATA = Path(os.environ.get("RAGLOOP_BENCH_DATA", REPO.parent / "shared" / "data"))
CORPORA = {
    "scifact": DATA / "scifact",
    "fqa": DATA / "financial_qa_10k",
    "squad": DATA / "squad2_dev_cs224n",
}
DEFAULT_WORK_DIR = Path(os.environ.get("RAGLOOP_BENCH_WORK_DIR", "/tmp/ragloop-bench"))


def corpus_file(name: str) -> Path:
    """The BEIR ``corpus.jsonl`` of a corpus name (scifact, fqa, squad)."""
    from ragloop.eval.datasets import dataset_dir

    return dataset_dir(CORPORA[name]) / "corpus.jsonl"


def queries_file(name: str) -> Path:
    """The BEIR ``queries.jsonl`` of a corpus name."""
    from ragloop.eval.datasets import dataset_dir

    return dataset_dir(CORPORA[name]) / "queries.jsonl"


def load_questions(name: str) -> list[str]:
    """Non-empty query texts of a corpus, in file order (all splits: load only needs texts)."""
    from ragloop.eval.datasets import load_queries

    return [q.text for q in load_queries(queries_file(name)).values() if q.text.strip()]


def bench_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for child processes: offline hub, the repo importable, plus ``extra``."""
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    # Tokenizer thread pools fight torch's for the two cores and warn after fork.
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(REPO / "src"), env.get("PYTHONPATH", "")) if p
    )
    env.update(extra or {})
    return env


@dataclass
class Timed:
    """A finished child process: wall seconds, its parsed JSON output, and its stderr tail."""

    seconds: float
    output: dict[str, Any]
    returncode: int
    stderr_tail: str


def run_json(
    argv: Sequence[str], env: Mapping[str, str] | None = None, ok_codes: Sequence[int] = (0,)
) -> Timed:
    """Run a command that prints one JSON object on stdout; time it from spawn to exit.

    Wall time from spawn is what a user waits for, so it includes interpreter start, imports
    and model loading on both sides of a comparison.
    """
    started = time.perf_counter()
    proc = subprocess.run(list(argv), env=bench_env(env), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode not in ok_codes:
        raise RuntimeError(
            f"{' '.join(argv[:4])}... exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        )
    try:
        output = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"{argv[:4]} printed no JSON: {proc.stdout[-500:]!r}") from exc
    return Timed(seconds, output, proc.returncode, proc.stderr.strip()[-500:])


#: ``ragloop ingest`` exits 3 when some documents failed; Financial QA's corpus holds one record
#: with no text (``c02624``), which ragloop refuses by design and LangChain turns into no chunks.
INGEST_OK_CODES = (0, 3)


def only_blank_failures(report: dict[str, Any]) -> bool:
    """True when every failure in an ingest report is a document with no text."""
    return all("missing or empty text" in f.get("reason", "") for f in report.get("failed", []))


def python_module(module: str, *args: str) -> list[str]:
    """argv running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def reused_store(data_dir: Path) -> dict[str, Any] | None:
    """The build record (``bench-build.json``) of a store an earlier run finished, else None."""
    marker = data_dir / "bench-build.json"
    if not marker.exists():
        return None
    rec: dict[str, Any] = json.loads(marker.read_text())
    print(f"store: reusing {data_dir} ({rec['chunks']:,} chunks)", flush=True)
    return rec


def ingest_store(
    files: Sequence[Path], data_dir: Path, env: Mapping[str, str] | None = None
) -> tuple[Timed, dict[str, Any]]:
    """``ragloop ingest`` of ``files`` into ``data_dir`` (RuntimeError on any failure but a
    document with no text), then that store's ``ragloop status``."""
    argv = python_module("ragloop.cli.main", "ingest", *map(str, files), "--data-dir")
    t = run_json([*argv, str(data_dir), "--json"], env=env, ok_codes=INGEST_OK_CODES)
    if not only_blank_failures(t.output):
        raise RuntimeError(f"ragloop ingest reported failures: {t.output['failed'][:3]}")
    status = run_json(
        python_module("ragloop.cli.main", "status", "--data-dir", str(data_dir), "--json")
    ).output
    return t, status


@contextmanager
def dataset_runtime(dataset: Path, data_dir: Path | None, prefix: str) -> Iterator[Any]:
    """A runtime over ``data_dir`` as it is, or, without one, over a temporary data dir with the
    BEIR dataset's ``corpus.jsonl`` ingested first (removed afterwards)."""
    from ragloop.core.runtime import open_runtime
    from ragloop.core.settings import load_settings

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        rt = open_runtime(load_settings(data_dir=data_dir or Path(tmp)))
        try:
            if data_dir is None:
                print(f"ingesting {dataset / 'corpus.jsonl'} ...", file=sys.stderr)
                from ragloop.ingest.pipeline import Ingestor

                Ingestor(rt).ingest([dataset / "corpus.jsonl"])
            yield rt
        finally:
            rt.close()


def latency_summary(
    clients: int, latencies: Sequence[float], errors: Sequence[str], elapsed: float
) -> dict[str, Any]:
    """Requests, errors, p50/p99 (ms) and requests/s of a load run (latencies in seconds)."""
    import numpy as np

    lat = np.asarray(latencies, dtype=float) * 1000
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "rps": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
    }


def ratio(a: float, b: float) -> float:
    """a / b to three decimals, 0 when b is 0 (two decimals printed 2.999 as a goal-meeting 3.0)."""
    return round(a / b, 3) if b else 0.0


def print_table(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """A fixed-width text table; missing cells print as '-'."""
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print(f"\n== {title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def write_json(path: Path | None, record: Mapping[str, Any]) -> None:
    """Write ``record`` to ``path`` (parents created) when a path is given."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")


def embedder_info(embedder: Any) -> dict[str, Any]:
    """Backend and precision of a loaded ragloop embedder, whatever its class.

    Other backends (ONNX, int8) may expose ``backend``/``precision`` attributes; the torch
    embedder has ``use_bf16``. We report what the object says rather than assume a default.
    """
    backend = getattr(embedder, "backend", None) or (
        "torch" if hasattr(embedder, "use_bf16") else type(embedder).__name__
    )
    precision = getattr(embedder, "precision", None)
    if not isinstance(precision, str):
        use_bf16 = getattr(embedder, "use_bf16", None)
        packed = getattr(embedder, "packed_layers", 0)
        bf16 = "bf16 weights" + (f", {packed} packed oneDNN layers" if packed else "")
        precision = bf16 if use_bf16 else ("fp32" if use_bf16 is False else "unknown")
    return {
        "class": type(embedder).__name__,
        "backend": str(backend),
        "precision": precision,
        "model_id": getattr(embedder, "model_id", ""),
        "max_seq_length": getattr(embedder, "max_seq_length", None),
    }


def ragloop_embedder(data_dir: Path) -> Any:
    """The embedder ragloop's default settings load for ``data_dir`` (as the CLI would).

    The data dir matters: with ``RAGLOOP_BACKEND=auto`` the first load measures the backends
    and caches its choice (and any ONNX export) there.
    """
    from ragloop.core.embedding.registry import default_registry
    from ragloop.core.runtime import ModelLoader
    from ragloop.core.settings import load_settings

    s = load_settings(data_dir=data_dir)
    # ModelLoader builds the options exactly as serving does (it never touches the catalog
    # for a plain model reference), so new settings such as a backend follow automatically.
    loader = ModelLoader(s, None, default_registry())  # type: ignore[arg-type]
    return loader.embedder_for(s.embedder)


def backend_choice(data_dir: Path) -> dict[str, Any]:
    """Which backend and precision ragloop picked for a data dir, and how it knew.

    With ``RAGLOOP_BACKEND=auto`` the decision (with the timed trials behind it) is cached as
    ``<data_dir>/onnx/<model>/auto-<cpu>.json``; otherwise the settings name it. Read from the
    files rather than by loading the model, so a benchmark can report what a child process used.
    """
    from ragloop.core.settings import load_settings

    for path in sorted((data_dir / "onnx").glob("*/auto-*.json")):
        try:
            saved = json.loads(path.read_text())
            backend, _, precision = str(saved["choice"]).partition("-")
        except (OSError, ValueError, KeyError):
            continue
        return {
            "backend": backend,
            "precision": precision,
            "source": f"auto decision cached in {path.relative_to(data_dir)}",
            "trials": saved.get("trials", []),
        }
    s = load_settings(data_dir=data_dir)
    return {
        "backend": str(getattr(s, "backend", "torch")),
        "precision": str(s.precision),
        "source": "settings (RAGLOOP_BACKEND / RAGLOOP_PRECISION)",
        "trials": [],
    }


def peer_precision(choice: dict[str, Any]) -> str:
    """The precision the torch-only LangChain peer should run to match ragloop's choice.

    bf16 (ragloop's bf16 weights) maps to bf16 (the peer gets torch autocast); fp32 of either
    backend maps to fp32. int8 ONNX has no torch counterpart here, so the peer runs bf16 when
    the CPU has it (its fastest equal-quality path) and the difference is printed.
    """
    from ragloop.core.embedding.hardware import cpu_has_native_bf16

    precision = str(choice["precision"])
    if precision in ("bf16", "fp32"):
        return precision
    return "bf16" if cpu_has_native_bf16() else "fp32"

"""Ingest: ragloop against the LangChain pipeline, on SciFact and Financial QA, in one run.

Usage:
  python -m benchmarks.ingest [--corpus scifact|fqa|both] [--work-dir /tmp/ragloop-bench]
      [--peer-reingest index|skip] [--quick] [--json PATH]

Per corpus, each in a fresh data dir and both persisted to disk:

1. first ingest: ``ragloop ingest CORPUS --data-dir DIR --json`` against
   ``benchmarks.langchain_peer ingest`` (splitter + HuggingFaceEmbeddings + Chroma.from_documents);
   both are timed from process spawn to exit, so imports and model loading count on both sides.
   The peer runs twice where ragloop uses bf16: at ragloop's precision (torch autocast around
   the pipeline, the same arithmetic) and as written (fp32, what the user's script does); the
   goal is stated against the pipeline as written, the other ratio isolates the precision;
2. re-ingest of the unchanged corpus;
3. re-ingest after 1% of the documents changed (every 100th document, in id order, gets a
   sentence appended: an edit at the end, the common case).

The peer's re-ingest (``--peer-reingest index``) is LangChain's indexing API, which needs its
own first pass to record hashes; re-running the plain pipeline would simply embed everything
again. The corpus is copied into the work dir first: a BEIR document's id is tied to the file
it came from, so the 1%-changed version must replace the file at the same path.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import (
    DEFAULT_WORK_DIR,
    INGEST_OK_CODES,
    backend_choice,
    corpus_file,
    only_blank_failures,
    peer_precision,
    print_table,
    python_module,
    ratio,
    run_json,
    write_json,
)

CORPUS_NAMES = {"scifact": "SciFact", "fqa": "Financial QA 10-K"}
QUICK_DOCS = 150
EDIT = " This sentence was added to measure incremental re-ingest."


def prepare_corpus(name: str, dest: Path, limit: int | None) -> int:
    """Copy a corpus (its first ``limit`` documents when given) to ``dest``; returns the count.

    Documents are read and written through ``load_corpus`` so the file both sides read is
    exactly the parsed corpus.
    """
    from ragloop.eval.datasets import load_corpus

    docs = list(load_corpus(corpus_file(name)).values())[:limit]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    return len(docs)


def change_one_percent(path: Path) -> int:
    """Append a sentence to every 100th document (by sorted id) in place; returns how many."""
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    chosen = set(sorted(d["_id"] for d in lines)[::100])
    with path.open("w", encoding="utf-8") as fh:
        for d in lines:
            if d["_id"] in chosen:
                d["text"] = d["text"] + EDIT
            fh.write(json.dumps(d) + "\n")
    return len(chosen)


def ragloop_ingest(corpus: Path, data_dir: Path) -> dict[str, Any]:
    """One ``ragloop ingest`` run: wall seconds plus its own JSON report."""
    argv = python_module("ragloop.cli.main", "ingest", str(corpus), "--data-dir", str(data_dir))
    t = run_json([*argv, "--json"], ok_codes=INGEST_OK_CODES)
    rep = t.output
    if not only_blank_failures(rep):
        raise RuntimeError(f"ragloop ingest reported failures: {rep['failed'][:3]}")
    return {
        "wall_s": round(t.seconds, 2),
        "pipeline_s": rep["seconds"],
        "documents": rep["documents_seen"],
        "added": rep["added"],
        "updated": rep["updated"],
        "unchanged": rep["unchanged"],
        "chunks_embedded": rep["chunks_embedded"],
        "chunks_reused": rep["chunks_reused"],
    }


def peer(
    mode: str, corpus: Path, persist: Path, precision: str, records: Path | None = None
) -> dict[str, Any]:
    """One LangChain peer process: wall seconds, its JSON summary and its work seconds.

    Work seconds match ragloop's ``seconds`` (load, split, embed, store; not interpreter start
    or model loading), so the two columns compare like with like.
    """
    argv = python_module(
        "benchmarks.langchain_peer",
        mode,
        str(corpus),
        "--persist-dir",
        str(persist),
        "--precision",
        precision,
    )
    if records is not None:
        argv += ["--records", str(records)]
    t = run_json(argv)
    ph = t.output["phases"]
    work = ph["load"] + ph["split"] + ph.get("embed_and_store", 0.0) + ph.get("index", 0.0)
    return {"wall_s": round(t.seconds, 2), "pipeline_s": round(work, 3)} | t.output


def _row(side: str, run: str, r: dict[str, Any], docs: int) -> dict[str, Any]:
    chunks = r.get("chunks_embedded", 0)
    return {
        "side": side,
        "run": run,
        "wall s": r["wall_s"],
        "work s": r.get("pipeline_s"),
        "docs": docs,
        "chunks embedded": chunks,
        "docs/s": round(docs / r["wall_s"], 1) if r["wall_s"] else None,
        "chunks/s": round(chunks / r["wall_s"], 1) if r["wall_s"] else None,
    }


def bench_corpus(name: str, work: Path, peer_reingest: str, limit: int | None) -> dict[str, Any]:
    """All runs for one corpus; returns the record and prints its table."""
    root = work / "ingest" / name
    shutil.rmtree(root, ignore_errors=True)  # fresh data dirs on both sides, every time
    corpus = root / "corpus" / "corpus.jsonl"
    n_docs = prepare_corpus(name, corpus, limit)
    print(f"\n[{name}] {n_docs} documents -> {corpus}", flush=True)

    res: dict[str, Any] = {"corpus": name, "documents": n_docs}
    print("  ragloop first ingest ...", flush=True)
    res["ragloop_first"] = ragloop_ingest(corpus, root / "ragloop")
    # The peer runs at the precision ragloop chose for itself in this data dir (auto measures).
    choice = backend_choice(root / "ragloop")
    precision = peer_precision(choice)
    res["ragloop_backend"] = choice
    res["peer_precision"] = precision
    print(
        f"  ragloop ran {choice['backend']} {choice['precision']} ({choice['source']}); "
        f"LangChain peer runs torch {precision}",
        flush=True,
    )
    if choice["precision"] != precision:
        print(
            f"  note: the peer has no {choice['backend']} {choice['precision']} path; "
            f"it runs torch {precision}",
            file=sys.stderr,
        )
    print("  langchain first ingest ...", flush=True)
    res["langchain_first"] = peer("ingest", corpus, root / "langchain", precision)
    if precision != "fp32":
        # The pipeline exactly as a LangChain user writes it runs fp32: no autocast anywhere.
        print("  langchain first ingest, as written (fp32) ...", flush=True)
        res["langchain_first_as_written"] = peer("ingest", corpus, root / "langchain-fp32", "fp32")
    print("  ragloop re-ingest, unchanged ...", flush=True)
    res["ragloop_unchanged"] = ragloop_ingest(corpus, root / "ragloop")
    if peer_reingest == "index":
        records = root / "langchain-index-records.json"
        print("  langchain indexing API: first pass, unchanged ...", flush=True)
        res["langchain_index_first"] = peer(
            "index", corpus, root / "langchain-index", precision, records
        )
        res["langchain_index_unchanged"] = peer(
            "index", corpus, root / "langchain-index", precision, records
        )
    res["changed_documents"] = change_one_percent(corpus)
    print(f"  {res['changed_documents']} documents changed; re-ingest ...", flush=True)
    res["ragloop_changed"] = ragloop_ingest(corpus, root / "ragloop")
    if peer_reingest == "index":
        res["langchain_index_changed"] = peer(
            "index", corpus, root / "langchain-index", precision, records
        )

    rf, lf, ru = res["ragloop_first"], res["langchain_first"], res["ragloop_unchanged"]
    la = res.get("langchain_first_as_written", lf)
    res["ratios"] = {
        "first_ingest_docs_per_s_ragloop_over_langchain": ratio(lf["wall_s"], rf["wall_s"]),
        "first_ingest_docs_per_s_ragloop_over_langchain_as_written": ratio(
            la["wall_s"], rf["wall_s"]
        ),
        "first_over_unchanged_reingest_wall": ratio(rf["wall_s"], ru["wall_s"]),
        "first_over_unchanged_reingest_pipeline": ratio(rf["pipeline_s"], ru["pipeline_s"]),
        "first_over_changed_reingest_wall": ratio(rf["wall_s"], res["ragloop_changed"]["wall_s"]),
    }
    # What the first run spends beyond a warm start plus its own work: with RAGLOOP_BACKEND=auto
    # that is timing the backends and exporting ONNX, once per data dir.
    res["ragloop_first_run_overhead_s"] = round(
        rf["wall_s"] - rf["pipeline_s"] - (ru["wall_s"] - ru["pipeline_s"]), 1
    )
    rows = [
        _row("ragloop", "first", rf, n_docs),
        _row("langchain", f"first (from_documents), {precision}", lf, n_docs),
        _row("ragloop", "unchanged", ru, n_docs),
        _row("ragloop", "1% changed", res["ragloop_changed"], n_docs),
    ]
    for key, label in (
        ("langchain_first_as_written", "first, as written (fp32)"),
        ("langchain_index_first", "index API first pass"),
        ("langchain_index_unchanged", "index API unchanged"),
        ("langchain_index_changed", "index API 1% changed"),
    ):
        if key in res:
            rows.append(_row("langchain", label, res[key], n_docs))
    print_table(
        f"ingest: {CORPUS_NAMES[name]} ({n_docs:,} documents; ragloop chunks "
        f"{rf['chunks_embedded']:,}, langchain chunks {lf['chunks']:,})",
        rows,
        ["side", "run", "wall s", "work s", "docs", "chunks embedded", "docs/s", "chunks/s"],
    )
    r = res["ratios"]
    print(
        f"ratio first ingest, ragloop/langchain as written (fp32) documents/s: "
        f"{r['first_ingest_docs_per_s_ragloop_over_langchain_as_written']}x (goal >= 3x)\n"
        f"ratio first ingest, ragloop/langchain at ragloop's precision ({precision}) "
        f"documents/s: {r['first_ingest_docs_per_s_ragloop_over_langchain']}x\n"
        f"ratio first ingest / unchanged re-ingest: {r['first_over_unchanged_reingest_wall']}x "
        f"wall, {r['first_over_unchanged_reingest_pipeline']}x pipeline (goal >= 50x)\n"
        f"ratio first ingest / 1%-changed re-ingest: "
        f"{r['first_over_changed_reingest_wall']}x wall\n"
        f"ragloop first-run time beyond an unchanged re-ingest, outside the pipeline (importing "
        f"and loading the model stack, backend choice, exports): "
        f"{res['ragloop_first_run_overhead_s']} s"
    )
    return res


def run(
    corpora: list[str], work: Path, peer_reingest: str, quick: bool, docs: int | None = None
) -> dict[str, Any]:
    """Every corpus in turn; the JSON record of the whole benchmark."""
    limit = docs or (QUICK_DOCS if quick else None)
    results = [bench_corpus(c, work, peer_reingest, limit) for c in corpora]
    return {"benchmark": "ingest", "quick": quick, "corpora": results}


def main() -> None:
    """Parse arguments, print the machine, run, print tables, optionally write JSON."""
    from benchmarks.machine import machine_record, print_machine

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", choices=["scifact", "fqa", "both"], default="both")
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    ap.add_argument("--peer-reingest", choices=["index", "skip"], default="index")
    ap.add_argument("--quick", action="store_true", help=f"first {QUICK_DOCS} documents only")
    ap.add_argument("--docs", type=int, help="first N documents of each corpus (smoke tests)")
    ap.add_argument("--json", type=Path, help="write the JSON record here")
    args = ap.parse_args()
    machine = machine_record(0.5 if args.quick else 2.0)
    print_machine(machine)
    corpora = ["scifact", "fqa"] if args.corpus == "both" else [args.corpus]
    record = run(corpora, args.work_dir, args.peer_reingest, args.quick, args.docs)
    write_json(args.json, {"machine": machine} | record)


if __name__ == "__main__":
    main()

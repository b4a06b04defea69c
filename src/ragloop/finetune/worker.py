"""The training worker: a separate process that trains, encodes and gates one candidate.

``python -m ragloop.finetune.worker JOB_DIR``. It reads the pairs, the corpus and the current
model's stored vectors that the server wrote into JOB_DIR, and writes the candidate model into
its version directory plus ``candidate_vectors.npy`` and ``gate.json``. It never touches the
vector store (embedded Chroma belongs to the server process) and reports progress on the job
row. Exit codes: 0 done, 3 cancelled, anything else failed (the log is kept in JOB_DIR).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragloop.core.embedding.backends import load_model_dir
from ragloop.core.embedding.base import Embedder, EmbedderOptions, default_registry
from ragloop.core.embedding.onnx_embedder import OnnxEmbedder
from ragloop.core.embedding.query_adapter import QueryAdapterEmbedder
from ragloop.core.embedding.torch_embedder import SentenceTransformerEmbedder, cpu_has_native_bf16
from ragloop.core.errors import StoreError
from ragloop.core.runtime import ModelLoader
from ragloop.core.settings import load_settings
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.jobs import JobStore
from ragloop.eval.datasets import load_beir
from ragloop.eval.model_mode import embed_in_batches, evaluate_model
from ragloop.finetune.gate import decide, score_with_per_query
from ragloop.finetune.options import RetrainOptions
from ragloop.finetune.trainer import train_full, train_query_adapter

EXIT_CANCELLED = 3


class _Cancelled(Exception):
    pass


class Worker:
    """One candidate's training, corpus encoding and gate."""

    def __init__(self, job_dir: Path) -> None:
        self.dir = job_dir
        self.spec: dict[str, Any] = json.loads((job_dir / "job.json").read_text())
        self.options = RetrainOptions.model_validate(self.spec["options"])
        self.settings = load_settings(data_dir=Path(self.spec["data_dir"]))
        self.catalog = Catalog.open(self.settings.resolved_catalog_url)
        self.jobs = JobStore(self.catalog.engine)
        self.job_id: str = self.spec["job_id"]
        self.parent = os.getppid()
        self.last_write = 0.0
        # The worker never opens the vector store (embedded Chroma belongs to the server).
        self.models = ModelLoader(self.settings, self.catalog, default_registry())

    def report(self, progress: float, message: str, loss: float | None = None) -> bool:
        """Write progress (throttled); True when the job was cancelled or the server died."""
        now = time.monotonic()
        if now - self.last_write > 1.0 or progress >= 1.0:
            self.last_write = now
            fields: dict[str, Any] = {"progress": round(progress, 4), "message": message}
            if loss is not None:
                fields["message"] = f"{message}, loss {loss:.4f}"
            self.jobs.update(self.job_id, **fields)
            if self.jobs.get(self.job_id).state == "cancelling":
                return True
        return os.getppid() != self.parent

    def run(self) -> None:
        """Train, encode, gate; write results."""
        current = self.models.index_for(self.catalog.get_version(self.spec["current_version"]))
        out_dir = Path(self.spec["candidate_dir"])
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = [json.loads(line) for line in (self.dir / "train.jsonl").read_text().splitlines()]
        corpus = [json.loads(line) for line in (self.dir / "corpus.jsonl").read_text().splitlines()]
        chunk_ids = [c["id"] for c in corpus]
        current_vecs = np.load(self.dir / "current_vectors.npy")
        started = time.time()

        def scaled(lo: float, hi: float) -> Any:
            def report(frac: float, message: str, loss: float | None = None) -> bool:
                return self.report(lo + (hi - lo) * frac, message, loss)

            return report

        train_report = scaled(0.10, 0.70)
        base = (
            current.embedder.parent
            if isinstance(current.embedder, QueryAdapterEmbedder)
            else current.embedder
        )
        if self.options.query_only:
            pos = {cid: i for i, cid in enumerate(chunk_ids)}
            usable = [r for r in rows if r["positive_id"] in pos]
            q = embed_in_batches(current.embedder, [r["anchor"] for r in usable], is_query=True)
            p = current_vecs[[pos[r["positive_id"]] for r in usable]]
            negs = [pos.get(r.get("negative_id") or "", -1) for r in usable]
            n = current_vecs[negs] if usable and all(i >= 0 for i in negs) else None
            stats = train_query_adapter(q, p, n, self.options, out_dir, train_report)
            candidate: Embedder = QueryAdapterEmbedder(
                current.embedder, np.load(out_dir / "query_adapter.npy"), self.spec["version"]
            )
            candidate_vecs = current_vecs
        else:
            if not isinstance(base, SentenceTransformerEmbedder | OnnxEmbedder):
                raise StoreError(
                    f"cannot fine-tune {base.model_id}: not a sentence-transformers model"
                )
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(
                str(base.path), device=self.settings.device, local_files_only=True
            )
            use_bf16 = (
                self.settings.device == "cpu"
                and self.settings.precision != "fp32"
                and cpu_has_native_bf16()
            )
            stats = train_full(
                model,
                rows,
                self.options,
                out_dir,
                str(base.path),
                use_bf16,
                train_report,
                device=self.settings.device,
            )
            if self.report(0.70, "loading the candidate"):
                raise _Cancelled
            candidate = load_model_dir(
                out_dir, EmbedderOptions.from_settings(self.settings), model_id=self.spec["version"]
            )
            candidate_vecs = self._encode(candidate, [c["text"] for c in corpus])
        np.save(self.dir / "candidate_vectors.npy", candidate_vecs)
        stats["seconds"] = round(time.time() - started, 1)
        (out_dir / "training.json").write_text(
            json.dumps(
                {"options": self.options.model_dump(), "stats": stats, "base": base.model_id},
                indent=2,
            )
        )
        self.report(0.90, "gate: evaluating candidate and current model")
        gate = self._gate(current.embedder, candidate, corpus, current_vecs, candidate_vecs)
        (self.dir / "gate.json").write_text(json.dumps(gate, indent=2))
        (out_dir / "gate.json").write_text(json.dumps(gate, indent=2))

    def _encode(self, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
        def progress(stage: str, done: int, total: int) -> None:
            if self.report(0.70 + 0.2 * done / max(total, 1), f"embedding corpus {done}/{total}"):
                raise _Cancelled

        return embed_in_batches(
            embedder,
            texts,
            is_query=False,
            batch_size=self.settings.embed_batch_size,
            progress=progress,
        )

    def _gate(
        self,
        current: Embedder,
        candidate: Embedder,
        corpus: list[dict[str, str]],
        current_vecs: np.ndarray,
        candidate_vecs: np.ndarray,
    ) -> dict[str, Any]:
        margin = (
            self.options.margin if self.options.margin is not None else self.settings.gate_margin
        )
        if self.options.gate_dataset:
            ds = load_beir(Path(self.options.gate_dataset), self.options.gate_split)
            cur = evaluate_model(current, ds).by_dim[current.dimension]
            cand = evaluate_model(candidate, ds).by_dim[candidate.dimension]
            result = decide(f"{ds.name}/{ds.split}", len(ds.queries), cur, cand, margin)
        else:
            held = json.loads((self.dir / "heldout.json").read_text())
            questions = [h["question"] for h in held]
            gold = [h["gold"] for h in held]
            ids = [c["id"] for c in corpus]
            docs = [c["doc"] for c in corpus]
            cur_q = embed_in_batches(current, questions, is_query=True)
            cand_q = embed_in_batches(candidate, questions, is_query=True)
            cur, cur_pq = score_with_per_query(ids, docs, current_vecs, cur_q, gold)
            cand, cand_pq = score_with_per_query(ids, docs, candidate_vecs, cand_q, gold)
            deltas = np.subtract(cand_pq, cur_pq)
            result = decide("held-out pairs", len(held), cur, cand, margin, deltas.tolist())
        return result.to_dict()

    def regate(self) -> dict[str, Any]:
        """Judge the job's trained candidate again with the current gate (nothing is written):
        for auditing a decision after the gate's rule changed."""
        current = self.models.index_for(self.catalog.get_version(self.spec["current_version"]))
        candidate = load_model_dir(
            Path(self.spec["candidate_dir"]),
            EmbedderOptions.from_settings(self.settings),
            model_id=self.spec["version"],
        )
        corpus = [json.loads(line) for line in (self.dir / "corpus.jsonl").read_text().splitlines()]
        return self._gate(
            current.embedder,
            candidate,
            corpus,
            np.load(self.dir / "current_vectors.npy"),
            np.load(self.dir / "candidate_vectors.npy"),
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; the exit code tells the server how it ended.

    ``--gate-only`` re-judges a finished job's candidate and prints the gate result as JSON.
    """
    args = list(argv if argv is not None else sys.argv[1:])
    worker = Worker(Path(args[0]))
    if "--gate-only" in args[1:]:
        try:
            print(json.dumps(worker.regate(), indent=2))
        finally:
            worker.catalog.close()
        return 0
    try:
        worker.run()
    except _Cancelled:
        return EXIT_CANCELLED
    finally:
        worker.catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

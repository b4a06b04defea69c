"""Retrain jobs: pairs (here) -> training worker process -> gate -> blue/green promotion.

One job at a time. The server process builds the pairs and owns the vector store; training,
candidate encoding and the gate run in a separate worker process (on another host with remote
training: ``remote.py``); promotion upserts the candidate's vectors into a new collection
while the old one keeps serving, catches up on chunks ingested meanwhile, then flips the
active pointer under the write lock. A crash or kill during re-embedding resumes on restart
(upserts are idempotent) or fails the job; the active pointer only ever names a complete
collection.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ragloop.core.errors import ConflictError, InvalidInputError
from ragloop.core.fusion import FusionRecipe
from ragloop.core.generators.base import LLMGenerator
from ragloop.core.records import ChunkRecord, ModelVersion
from ragloop.core.runtime import Runtime
from ragloop.core.storage.jobs import FINAL_STATES, Job, JobStore
from ragloop.core.storage.locks import WriteLock
from ragloop.core.storage.querylog import LABELLED_SOURCES, QueryLog
from ragloop.core.storage.vectors import collection_name
from ragloop.finetune.jobspec import (
    DONE,
    EXIT_CANCELLED,
    EXIT_OK,
    PAIRS,
    REEMBEDDING,
    TRAINING,
    CorpusRow,
    HeldoutQuestion,
    JobFiles,
    JobSpec,
    TrainRow,
    judged_untitled,
)
from ragloop.finetune.options import RetrainOptions
from ragloop.finetune.pairs import Pair, TrainingSet, build_training_set, mask_span
from ragloop.finetune.promote import Promoter
from ragloop.finetune.remote import RemoteTraining, remote_enabled, shared_root

KIND = "retrain"
ACTIVE_STATES = ("queued", "running", "evaluating", "re-embedding", "cancelling")
#: Seconds a worker gets to stop by itself after a cancel before it is killed.
CANCEL_GRACE_SECONDS = 20


class RetrainManager:
    """Starts, runs, cancels and resumes retrain jobs for one runtime."""

    def __init__(
        self,
        runtime: Runtime,
        querylog: QueryLog,
        jobs: JobStore,
        write_lock: WriteLock,
        llm: Callable[[], LLMGenerator | None],
    ) -> None:
        self.rt = runtime
        self.log = querylog
        self.jobs = jobs
        self.llm = llm
        self.promoter = Promoter(runtime, write_lock)
        # Remote training: jobs are queued for `ragloop worker` on another host (remote.py).
        self.remote = (
            RemoteTraining(runtime.settings, jobs) if remote_enabled(runtime.settings) else None
        )
        self._start_lock = threading.Lock()
        self.threads: dict[str, threading.Thread] = {}

    def running(self) -> Job | None:
        """The retrain job in progress, if any."""
        return next((j for j in self.jobs.recent(KIND, 20) if j.state in ACTIVE_STATES), None)

    def start(self, options: RetrainOptions, wait: bool = False) -> Job:
        """Check the request, create the job and run it in a background thread."""
        with self._start_lock:
            busy = self.running()
            if busy is not None:
                raise ConflictError(f"retrain job {busy.id} is still {busy.state}; one at a time")
            self._check(options)
            job = self.jobs.create(KIND, options.model_dump())
            thread = threading.Thread(target=self._run, args=(job.id, options), daemon=True)
            self.threads[job.id] = thread
            thread.start()
        if wait:
            thread.join()
        return self.jobs.get(job.id)

    def _check(self, options: RetrainOptions) -> None:
        from ragloop.eval.datasets import load_beir

        if options.gate_dataset:
            try:
                load_beir(Path(options.gate_dataset), options.gate_split)
            except Exception as exc:
                raise InvalidInputError(f"gate dataset does not load: {exc}") from None
        general = options.general_dataset or self.rt.settings.gate_general_dataset
        if general:
            try:
                load_beir(Path(general), options.general_split)
            except Exception as exc:
                raise InvalidInputError(f"general dataset does not load: {exc}") from None
        chunks = self.rt.catalog.counts()["chunks"]
        if chunks == 0:
            raise InvalidInputError("nothing to train on: the catalog has no documents yet")
        labelled = len(self.log.pairs(LABELLED_SOURCES)) if "labelled" in options.sources else 0
        possible = labelled + (chunks if "synthetic" in options.sources else 0)
        if "pseudo" in options.sources and self.llm() is not None:
            possible += self.log.counts()["misses"]
        if possible == 0:
            raise InvalidInputError(
                "no training pairs: no feedback names a relevant chunk yet, and the synthetic "
                "source is off (add 'synthetic' to sources or collect feedback first)"
            )

    def cancel(self, job_id: str) -> Job:
        """Ask a running job to stop; the worker is killed if it does not stop in time."""
        job = self.jobs.get(job_id)
        if job.state in FINAL_STATES:
            raise ConflictError(f"job {job_id} already ended ({job.state})")
        self.jobs.update(job_id, state="cancelling", message="cancelling")
        return self.jobs.get(job_id)

    def _cancelled(self, job_id: str) -> bool:
        return self.jobs.get(job_id).state == "cancelling"

    def _root(self) -> Path:
        """Where job folders and candidate models go: ``RAGLOOP_SHARED_ROOT`` when set (every
        replica and worker reads it), else the data dir."""
        return shared_root(self.rt.settings)

    def _job_files(self, job_id: str) -> JobFiles:
        return JobFiles(self._root() / "jobs" / job_id)

    def _run(self, job_id: str, options: RetrainOptions) -> None:
        files = self._job_files(job_id)
        try:
            if self._cancelled(job_id):
                # Cancelled while still queued: marking it running would lose the cancel.
                self.jobs.update(job_id, state="cancelled", message="cancelled")
                return
            self.jobs.update(job_id, state="running", message=PAIRS.name)
            files.root.mkdir(parents=True, exist_ok=True)
            llm = self.llm() if {"pseudo", "synthetic"} & set(options.sources) else None

            def pairs_progress(stage: str, done: int, total: int) -> None:
                self.jobs.update(job_id, message=stage, progress=PAIRS.at(done, total))

            data = build_training_set(self.rt, self.log, options, llm, pairs_progress)
            if not data.train:
                raise InvalidInputError("no training pairs could be built from the enabled sources")
            shortfall = data.manifest.get("gate_shortfall")
            if shortfall:
                # Nothing could be promoted on this evidence: say what is missing, train nothing.
                self._too_few(job_id, data, options, str(shortfall))
                return
            version = self._prepare(job_id, files, options, data)
            self.jobs.update(
                job_id,
                message=TRAINING.name,
                progress=TRAINING.start,
                result={"manifest": data.manifest, "version": version},
            )
            code = EXIT_CANCELLED if self._cancelled(job_id) else self._train(job_id, files)
            if code == EXIT_CANCELLED or self._cancelled(job_id):
                self.jobs.update(job_id, state="cancelled", message="cancelled")
                return
            if code != EXIT_OK:
                tail = files.log_tail()
                raise RuntimeError(
                    f"training worker exited with {code}: {tail.strip().splitlines()[-1:] or ''}"
                )
            self._finish(job_id, files)
        except Exception as exc:  # the job row must say what happened; the old model serves on
            self.jobs.update(job_id, state="failed", message=f"{exc.__class__.__name__}: {exc}")

    def _too_few(
        self, job_id: str, data: TrainingSet, options: RetrainOptions, reason: str
    ) -> None:
        gate = {
            "gate_set": "held-out pairs",
            "n_queries": len(data.heldout),
            "min_questions": options.min_gate_questions,
            "question_origins": data.manifest.get("gate_questions", {}),
            "promote": False,
            "reason": reason,
        }
        self.jobs.update(
            job_id,
            state="rejected",
            progress=DONE,
            message=reason,
            result={"manifest": data.manifest, "gate": gate},
        )

    def _prepare(
        self, job_id: str, files: JobFiles, options: RetrainOptions, data: TrainingSet
    ) -> str:
        index = self.rt.active_index()
        version = time.strftime("ft-%Y%m%d-%H%M%S", time.gmtime())
        texts: dict[str, str] = {}
        corpus = [c for batch in self.rt.catalog.iter_chunks(5000) for c in batch]
        for c in corpus:
            texts[c.id] = c.embedding_input
        doc_of = {c.id: c.document_id for c in corpus}
        origins = {q: data.origins.get(q, "synthetic") for q, _ in data.heldout}
        # Gate-only documents' chunks carry their text without the title line too: the gate
        # judges those documents' heading and title questions against it (worker._gate).
        untitled_docs = {
            doc_of[c]
            for q, gold in data.heldout
            if judged_untitled(origins[q])
            for c in gold
            if c in doc_of
        }
        files.write_corpus(_corpus_row(c, c.document_id in untitled_docs) for c in corpus)
        stored = self.rt.store.vectors(index.collection, [c.id for c in corpus])
        missing = [c for c in corpus if c.id not in stored]
        if missing:  # should not happen; embed rather than gate on a partial corpus
            vecs = index.embedder.embed_documents([c.embedding_input for c in missing])
            stored.update({c.id: v for c, v in zip(missing, vecs, strict=True)})
        np.save(files.current_vectors, np.stack([stored[c.id] for c in corpus]))
        files.write_train(_train_row(p, texts) for p in data.train)
        files.write_heldout(
            [
                HeldoutQuestion(
                    question=q,
                    gold=sorted({doc_of[c] for c in gold if c in doc_of}),
                    origin=origins[q],
                    tunes=q not in data.feedback_only,
                )
                for q, gold in data.heldout
            ]
        )
        candidate_dir = self._root() / "models" / version  # settings.models_dir
        spec = JobSpec(
            job_id=job_id,
            version=version,
            data_dir=str(self.rt.settings.data_dir.resolve()),
            current_version=index.version.version,
            candidate_dir=str(candidate_dir.resolve()),
            options=options,
            settings=self.rt.settings.for_worker(),
        )
        files.write_spec(spec)
        candidate_dir.mkdir(parents=True, exist_ok=True)
        (candidate_dir / "manifest.json").write_text(json.dumps(data.manifest, indent=2))
        return version

    def _train(self, job_id: str, files: JobFiles) -> int:
        if self.remote is not None:
            return self.remote.train(job_id, files)
        with files.log.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ragloop.finetune.worker", str(files.root)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            asked = 0.0
            while proc.poll() is None:
                time.sleep(0.5)
                if self._cancelled(job_id):
                    asked = asked or time.monotonic()
                    if time.monotonic() - asked > CANCEL_GRACE_SECONDS:
                        proc.kill()
            return proc.returncode

    def _finish(self, job_id: str, files: JobFiles) -> None:
        spec = files.read_spec()
        gate = files.read_gate()
        options = spec.options
        parent = self.rt.catalog.get_version(spec.current_version)
        query_only = options.query_only
        mv = ModelVersion(
            version=spec.version,
            model_ref=spec.candidate_dir,
            parent=parent.version,
            dimension=parent.dimension,
            max_seq_length=parent.max_seq_length,
            collection=parent.collection
            if query_only
            else collection_name(self.rt.catalog.instance_id(), spec.version),
            status="candidate" if gate.promote else "rejected",
            created_at=time.time(),
            info={
                "kind": "query_adapter" if query_only else "full",
                "job_id": job_id,
                "gate": gate.to_dict(),
                "loss": options.loss,
                "lora": options.lora,
            },
        )
        self.rt.catalog.add_version(mv)
        if gate.promote and gate.candidate_recipe:
            # The recipe tuned for this candidate serves with it (stored before it activates).
            recipe = FusionRecipe.from_dict(gate.candidate_recipe).to_dict()
            self.rt.catalog.set_fusion(mv.version, recipe)
        result = self.jobs.get(job_id).result | {"gate": gate.to_dict(), "version": mv.version}
        if not gate.promote:
            self.jobs.update(
                job_id, state="rejected", progress=DONE, message=gate.reason, result=result
            )
            return
        self.jobs.update(
            job_id,
            state="re-embedding",
            progress=REEMBEDDING.start,
            message=REEMBEDDING.name,
            result=result,
        )
        self.promote(job_id, files.root)

    def promote(self, job_id: str, job_dir: Path) -> None:
        """Blue/green: fill the new collection, catch up, switch; resumable after a crash."""
        spec = JobFiles(job_dir).read_spec()
        mv = self.rt.catalog.get_version(spec.version)

        def progress(done: int, total: int) -> bool:
            self.jobs.update(
                job_id,
                progress=REEMBEDDING.at(done, total),
                message=f"{REEMBEDDING.name} {done}/{total}",
            )
            return self._cancelled(job_id)

        ok = self.promoter.promote(mv, job_dir, progress)
        if not ok:
            self.jobs.update(job_id, state="cancelled", message="cancelled during re-embedding")
            return
        self.jobs.update(job_id, state="promoted", progress=DONE, message=f"{mv.version} is active")

    def resume(self) -> None:
        """On start-up: resume interrupted promotions, fail jobs whose worker died with us."""
        for job in self.jobs.recent(KIND, 50):
            if job.state == "re-embedding":
                job_dir = self._job_files(job.id).root
                thread = threading.Thread(
                    target=self._resume_one, args=(job.id, job_dir), daemon=True
                )
                self.threads[job.id] = thread
                thread.start()
            elif job.state in ("queued", "running", "evaluating", "cancelling"):
                self.jobs.update(
                    job.id,
                    state="failed",
                    message="the server stopped while this job ran; the old model stayed active",
                )

    def _resume_one(self, job_id: str, job_dir: Path) -> None:
        try:
            self.promote(job_id, job_dir)
        except Exception as exc:
            self.jobs.update(
                job_id, state="failed", message=f"resuming the promotion failed: {exc}"
            )


def _corpus_row(chunk: ChunkRecord, untitled: bool) -> CorpusRow:
    row = CorpusRow(id=chunk.id, doc=chunk.document_id, text=chunk.embedding_input)
    if untitled:
        row["body"] = chunk.text
    return row


def _train_row(pair: Pair, texts: dict[str, str]) -> TrainRow:
    text = texts[pair.chunk_id]
    row = TrainRow(
        anchor=pair.question,
        positive=mask_span(text, pair.question) if pair.masked else text,
        positive_id=pair.chunk_id,
        source=pair.source,
    )
    if pair.negative_id:
        row["negative"] = texts[pair.negative_id]
        row["negative_id"] = pair.negative_id
    return row

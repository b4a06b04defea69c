"""The training worker: a separate process that trains, encodes and gates one candidate.

``python -m ragloop.finetune.worker JOB_DIR``. It reads the pairs, the corpus and the current
model's stored vectors that the server wrote into JOB_DIR, and writes the candidate model into
its version directory plus ``candidate_vectors.npy`` and ``gate.json`` (the files and progress
stages are ``jobspec``'s). It never touches the vector store (embedded Chroma belongs to the
server process) and reports progress on the job row. Exit codes: ``EXIT_OK`` done,
``EXIT_CANCELLED`` cancelled, anything else failed (the log is kept in JOB_DIR).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragloop.core.embedding.backends import load_model_dir
from ragloop.core.embedding.base import Embedder, EmbedderOptions
from ragloop.core.embedding.hardware import cpu_has_native_bf16
from ragloop.core.embedding.query_adapter import QueryAdapterEmbedder
from ragloop.core.embedding.registry import default_registry
from ragloop.core.errors import StoreError
from ragloop.core.runtime import ActiveIndex, ModelLoader
from ragloop.core.settings import Settings, load_settings
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.jobs import JobStore
from ragloop.eval.datasets import load_beir
from ragloop.finetune.forgetting import (
    ForgettingCheck,
    drift_check,
    drift_sample,
    general_check,
    sample_general,
)
from ragloop.finetune.gate import GateResult, decide, per_question_scores
from ragloop.finetune.jobspec import (
    ENCODING,
    EXIT_CANCELLED,
    EXIT_OK,
    GATE,
    TRAINING,
    CorpusRow,
    HeldoutQuestion,
    JobFiles,
    JobSpec,
    Stage,
    TrainRow,
    judged_untitled,
    write_gate,
)
from ragloop.finetune.scoring import (
    LexicalSearch,
    Rankings,
    TemporaryLexical,
    compare,
    dense_rankings,
    lexical_rankings,
    report_recipe,
    with_bodies,
)
from ragloop.finetune.trainer import Report, train_full, train_query_adapter

#: Chunks read per question when serving retrieves dense only (a document's best chunk).
DENSE_DEPTH = 300


class _Cancelled(Exception):
    pass


def worker_settings(spec: JobSpec) -> Settings:
    """The server's settings from the job file over this host's environment; the device and
    secrets are this host's own."""
    return load_settings(**{**spec.settings, "data_dir": Path(spec.data_dir)})


class Worker:
    """One candidate's training, corpus encoding and gate."""

    def __init__(self, job_dir: Path) -> None:
        self.files = JobFiles(job_dir)
        self.spec = self.files.read_spec()
        self.options = self.spec.options
        self.settings = worker_settings(self.spec)
        self.catalog = Catalog.open(self.settings.resolved_catalog_url)
        self.jobs = JobStore(self.catalog.engine)
        self.job_id = self.spec.job_id
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
        current = self.models.index_for(self.catalog.get_version(self.spec.current_version))
        out_dir = Path(self.spec.candidate_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = self.files.read_train()
        corpus = self.files.read_corpus()
        chunk_ids = [c["id"] for c in corpus]
        current_vecs = np.load(self.files.current_vectors)
        started = time.time()

        def scaled(stage: Stage) -> Report:
            def report(frac: float, message: str, loss: float | None = None) -> bool:
                return self.report(stage.at(frac), message, loss)

            return report

        train_report = scaled(TRAINING)
        base = (
            current.embedder.parent
            if isinstance(current.embedder, QueryAdapterEmbedder)
            else current.embedder
        )
        if self.options.query_only:
            pos = {cid: i for i, cid in enumerate(chunk_ids)}
            usable = [r for r in rows if r["positive_id"] in pos]
            q = current.embedder.embed_many([r["anchor"] for r in usable], is_query=True)
            p = current_vecs[[pos[r["positive_id"]] for r in usable]]
            negs = [pos.get(r.get("negative_id") or "", -1) for r in usable]
            n = current_vecs[negs] if usable and all(i >= 0 for i in negs) else None
            stats = train_query_adapter(q, p, n, self.options, out_dir, train_report)
            candidate: Embedder = QueryAdapterEmbedder(
                current.embedder, np.load(out_dir / "query_adapter.npy"), self.spec.version
            )
            candidate_vecs = current_vecs
        else:
            if base.source_dir is None:
                raise StoreError(
                    f"cannot fine-tune {base.model_id}: not a sentence-transformers model"
                )
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(
                str(base.source_dir), device=self.settings.device, local_files_only=True
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
                str(base.source_dir),
                use_bf16,
                train_report,
                device=self.settings.device,
            )
            if self.report(ENCODING.start, "loading the candidate"):
                raise _Cancelled
            candidate = load_model_dir(
                out_dir, EmbedderOptions.from_settings(self.settings), model_id=self.spec.version
            )
            candidate_vecs = self._encode(candidate, [c["text"] for c in corpus])
        np.save(self.files.candidate_vectors, candidate_vecs)
        stats["seconds"] = round(time.time() - started, 1)
        (out_dir / "training.json").write_text(
            json.dumps(
                {"options": self.options.model_dump(), "stats": stats, "base": base.model_id},
                indent=2,
            )
        )
        self.report(GATE.start, "gate: evaluating candidate and current model")
        gate = self._gate(current, candidate, corpus, current_vecs, candidate_vecs, rows)
        write_gate(gate, self.files.gate, out_dir / "gate.json")

    def _encode(self, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
        def progress(stage: str, done: int, total: int) -> None:
            if self.report(ENCODING.at(done, total), f"{ENCODING.name} {done}/{total}"):
                raise _Cancelled

        return embedder.embed_many(
            texts,
            is_query=False,
            batch_size=self.settings.embed_batch_size,
            progress=progress,
        )

    def _gate(
        self,
        current: ActiveIndex,
        candidate: Embedder,
        corpus: list[CorpusRow],
        current_vecs: np.ndarray,
        candidate_vecs: np.ndarray,
        rows: list[TrainRow],
    ) -> GateResult:
        """Score both models as serving retrieves (each with its recipe; the candidate's tuned
        on the gate questions), check forgetting, decide."""
        options = self.options
        margin = options.margin if options.margin is not None else self.settings.gate_margin
        hybrid = self.settings.retrieval != "dense"
        recipe = current.fusion if hybrid else None
        lexical: TemporaryLexical | None = None
        search: LexicalSearch | None = None
        # Gate-only documents' heading and title questions are judged without the title line
        # they were taken from: vectors of those documents' chunk text and the FTS5 text column
        # (jobspec.judged_untitled); an admin-named set's questions and labelled ones are not.
        untitled: list[bool] = []
        tunable: list[bool] | None = None
        bodies: dict[int, str] = {}
        try:
            if options.gate_dataset:
                ds = load_beir(Path(options.gate_dataset), options.gate_split)
                ids = list(ds.corpus)
                doc_of = {d: d for d in ids}
                texts = [ds.corpus[d].embedding_input for d in ids]
                cur_docs = current.embedder.embed_many(texts, is_query=False)
                cand_docs = candidate.embed_many(texts, is_query=False)
                judged = [q for q in ds.queries if ds.relevant(q)]
                questions = [ds.queries[q].text for q in judged]
                gold = [sorted(ds.relevant(q)) for q in judged]
                origins = {"dataset": len(judged)}
                gate_set = f"{ds.name}/{ds.split}"
                if hybrid:
                    lexical = TemporaryLexical(ds, self.files.root)
                search = lexical.search if lexical is not None else None
            else:
                held = self.files.read_heldout()
                ids = [c["id"] for c in corpus]
                doc_of = {c["id"]: c["doc"] for c in corpus}
                cur_docs, cand_docs = current_vecs, candidate_vecs
                questions = [h["question"] for h in held]
                gold = [h["gold"] for h in held]
                origins = dict(Counter(h.get("origin", "synthetic") for h in held))
                untitled = [judged_untitled(h.get("origin", "synthetic")) for h in held]
                tunable = [h.get("tunes", True) for h in held]
                bodies = self._bodies(corpus, held, untitled)
                gate_set = "held-out pairs"
                fts = self.catalog.lexical if hybrid else None
                search = fts.search if fts is not None else None
            depth = recipe.depth if recipe is not None else DENSE_DEPTH
            lex = lexical_rankings(search, questions, depth, doc_of, untitled)
            cur_q = current.embedder.embed_many(questions, is_query=True)
            cand_q = candidate.embed_many(questions, is_query=True)
            cur_bare = with_bodies(current.embedder, cur_docs, bodies) if bodies else cur_docs
            # A query-only candidate keeps the current document vectors, so their bodies too.
            cand_bare = (
                cur_bare
                if options.query_only or not bodies
                else with_bodies(candidate, cand_docs, bodies)
            )
            cur = Rankings(
                dense_rankings(ids, cur_docs, cur_q, depth, untitled, cur_bare), lex, doc_of, gold
            )
            cand = Rankings(
                dense_rankings(ids, cand_docs, cand_q, depth, untitled, cand_bare),
                lex,
                doc_of,
                gold,
            )
        finally:
            if lexical is not None:
                lexical.close()
        compared = compare(cur, cand, recipe, options.tune_recipe, options.seed, tunable)
        forgetting = self._forgetting(
            current, candidate, corpus, current_vecs, candidate_vecs, rows
        )
        # An admin-named gate set is judged on its mean alone (as before); held-out questions,
        # which a few lucky ones can swing, also on the bootstrap bound.
        deltas = np.subtract(compared.candidate_per_query, compared.current_per_query).tolist()
        result = decide(
            gate_set,
            len(questions),
            compared.current,
            compared.candidate,
            margin,
            None if options.gate_dataset else deltas,
            min_questions=options.min_gate_questions,
            forgetting=forgetting,
        )
        result.retrieval = "hybrid" if recipe is not None else "dense"
        result.current_recipe = report_recipe(compared.current_recipe)
        result.candidate_recipe = report_recipe(compared.candidate_recipe)
        result.recipes = compared.recipes
        result.recipe_questions = compared.recipe_questions
        result.question_origins = origins
        result.per_question = per_question_scores(
            questions, compared.current_per_query, compared.candidate_per_query
        )
        return result

    def _bodies(
        self, corpus: list[CorpusRow], held: list[HeldoutQuestion], untitled: list[bool]
    ) -> dict[int, str]:
        """Corpus row -> chunk text without its title line, for every chunk of the documents
        that untitled questions point to (the gate-only documents); rows with no title line
        are left out (their vectors already are of the text alone). A job written before
        corpus rows carried the text alone reads it from the catalog; a chunk deleted since
        keeps its titled vector."""
        docs = {d for h, bare in zip(held, untitled, strict=True) if bare for d in h["gold"]}
        rows = [i for i, c in enumerate(corpus) if c["doc"] in docs]
        older = [corpus[i]["id"] for i in rows if "body" not in corpus[i]]
        stored = self.catalog.get_chunks(older) if older else {}
        out: dict[int, str] = {}
        for i in rows:
            row = corpus[i]
            body = row["body"] if "body" in row else getattr(stored.get(row["id"]), "text", None)
            if body is not None and body != row["text"]:
                out[i] = body
        return out

    def _forgetting(
        self,
        current: ActiveIndex,
        candidate: Embedder,
        corpus: list[CorpusRow],
        current_vecs: np.ndarray,
        candidate_vecs: np.ndarray,
        rows: list[TrainRow],
    ) -> ForgettingCheck:
        """The general set when one is configured, else neighbour agreement with the base
        model on chunks no training row uses."""
        options = self.options
        general = options.general_dataset or self.settings.gate_general_dataset
        if general:
            ds = load_beir(Path(general), options.general_split)
            sample = sample_general(ds, options.general_max_queries, options.seed)
            return general_check(current.embedder, candidate, sample, options.max_general_drop)
        trained = {r["positive_id"] for r in rows} | {r.get("negative_id", "") for r in rows}
        picked = drift_sample([c["id"] for c in corpus], trained, options.seed)
        base = self._base_vectors(
            current, [corpus[i]["text"] for i in picked], current_vecs, picked
        )
        return drift_check(
            base, current_vecs[picked], candidate_vecs[picked], options.min_neighbour_agreement
        )

    def _base_vectors(
        self, current: ActiveIndex, texts: list[str], current_vecs: np.ndarray, rows: list[int]
    ) -> np.ndarray:
        """The base model's vectors of the sampled chunks (the current ones when the current
        version is the base model itself)."""
        version = current.version
        while version.parent:
            version = self.catalog.get_version(version.parent)
        if version.version == current.version.version or not texts:
            return current_vecs[rows]
        base = self.models.index_for(version).embedder
        return base.embed_many(texts, is_query=False)

    def regate(self) -> GateResult:
        """Judge the job's trained candidate again with the current gate (nothing is written):
        for auditing a decision after the gate's rule changed."""
        current = self.models.index_for(self.catalog.get_version(self.spec.current_version))
        candidate = load_model_dir(
            Path(self.spec.candidate_dir),
            EmbedderOptions.from_settings(self.settings),
            model_id=self.spec.version,
        )
        return self._gate(
            current,
            candidate,
            self.files.read_corpus(),
            np.load(self.files.current_vectors),
            np.load(self.files.candidate_vectors),
            self.files.read_train(),
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; the exit code tells the server how it ended.

    ``--gate-only`` re-judges a finished job's candidate and prints the gate result as JSON.
    """
    args = list(argv if argv is not None else sys.argv[1:])
    worker = Worker(Path(args[0]))
    if "--gate-only" in args[1:]:
        try:
            print(json.dumps(worker.regate().to_dict(), indent=2))
        finally:
            worker.catalog.close()
        return EXIT_OK
    try:
        worker.run()
    except _Cancelled:
        return EXIT_CANCELLED
    finally:
        worker.catalog.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

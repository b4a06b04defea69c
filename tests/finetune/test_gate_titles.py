"""A gate-only document's title question is judged without the title it was taken from: every
chunk carries its title line (in its vector and in the FTS5 title column), so judged with it
the question finds its own document under any model. Fake embedder, real FTS5 index."""

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragloop.core.runtime import Runtime
from ragloop.core.storage.jobs import JobStore
from ragloop.core.storage.querylog import QueryLog
from ragloop.finetune import worker as worker_module
from ragloop.finetune.jobspec import JobFiles
from ragloop.finetune.options import RetrainOptions
from ragloop.finetune.pairs import build_training_set
from ragloop.finetune.retrain import RetrainManager
from ragloop.finetune.scoring import (
    Rankings,
    dense_rankings,
    lexical_rankings,
    recipe_grid,
    score,
    tune,
)
from ragloop.ingest.pipeline import Ingestor
from tests.fakes import KeywordEmbedder, fake_registry

N_DOCS = 40
#: Distinct words outside the fake vocabulary and without digits, so a document's number (in
#: its title only) is the one thing that tells its chunk from the others'.
TAGS = [f"q{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(N_DOCS)]


def _ingest(rt: Runtime, root: Path) -> None:
    """Documents titled "Volcano lava <i>" whose text never mentions a volcano, lava or its
    number, and one document titled "Lava" (too short to be a question) about lava."""
    root.mkdir()
    rows = [
        {"_id": f"d{i}", "title": f"Volcano lava {i}", "text": f"Bread flour yeast {TAGS[i]}."}
        for i in range(N_DOCS)
    ]
    rows.append({"_id": "lava", "title": "Lava", "text": "Volcano lava magma flows downhill."})
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    Ingestor(rt).ingest([root / "corpus.jsonl"])


@pytest.fixture
def gate_job(fake_runtime: Runtime, tmp_path: Path) -> tuple[JobFiles, list[str]]:
    """A job directory as the server writes it: 10 labelled documents, the rest's titles as
    gate-only questions. Returns the files and the labelled questions."""
    _ingest(fake_runtime, tmp_path / "docs")
    log = QueryLog(fake_runtime.catalog.engine)
    labelled = [f"which volcano lava {i}" for i in range(10)]
    for i, question in enumerate(labelled):
        log.add_pair(question, fake_runtime.catalog.chunks_of(f"d{i}")[0].id, "feedback", None)
    options = RetrainOptions(hard_negatives=False, min_gate_questions=10)
    data = build_training_set(fake_runtime, log, options, None)
    assert data.manifest["gate_questions"] == {"labelled": 2, "synthetic": 15}
    jobs = JobStore(fake_runtime.catalog.engine)
    manager = RetrainManager(fake_runtime, log, jobs, threading.Lock(), lambda: None)
    files = manager._job_files("job-1")
    files.root.mkdir(parents=True)
    manager._prepare("job-1", files, options, data)
    return files, labelled


def _gate(
    files: JobFiles,
    embedder: KeywordEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    corpus: list[Any] | None = None,
) -> tuple[Rankings, Any]:
    """Run the worker's gate with the fake model as both current and candidate; returns the
    current model's rankings as the gate compared them, and the recipe."""
    monkeypatch.setattr(worker_module, "default_registry", lambda: fake_registry(embedder))
    seen: dict[str, Any] = {}
    real = worker_module.compare

    def spy(current, candidate, recipe, tune_recipe=True, seed=0, tunable=None):  # type: ignore[no-untyped-def]
        seen.update(current=current, recipe=recipe, tunable=tunable)
        return real(current, candidate, recipe, tune_recipe, seed, tunable)

    monkeypatch.setattr(worker_module, "compare", spy)
    worker = worker_module.Worker(files.root)
    try:
        current = worker.models.index_for(worker.catalog.get_version(worker.spec.current_version))
        vecs = np.load(files.current_vectors)
        result = worker._gate(
            current,
            current.embedder,
            corpus if corpus is not None else files.read_corpus(),
            vecs,
            vecs,
            files.read_train(),
        )
        # every gate question's score for both models is in the report (the version page's)
        assert [q["question"] for q in result.per_question or []] == [
            h["question"] for h in files.read_heldout()
        ]
    finally:
        worker.catalog.close()
    return seen["current"], seen["recipe"]


def test_a_title_question_no_longer_finds_its_document_by_its_own_title(
    gate_job: tuple[JobFiles, list[str]],
    fake_runtime: Runtime,
    fake_embedder: KeywordEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files, labelled = gate_job
    held = files.read_heldout()
    titles = [i for i, h in enumerate(held) if h["origin"] == "synthetic"]
    users = [i for i, h in enumerate(held) if h["origin"] == "labelled"]
    assert len(titles) == 15 and len(users) == 2
    # feedback questions (replayed misses) judge both models but never tune the recipe
    assert [h.get("tunes") for h in held] == [h["origin"] != "labelled" for h in held]
    gate_docs = {held[i]["gold"][0] for i in titles}
    # the job's corpus carries the text without the title line for gate-only documents only
    corpus = files.read_corpus()
    chunks = {c.id: c for b in fake_runtime.catalog.iter_chunks() for c in b}
    assert {r["doc"] for r in corpus if "body" in r} == gate_docs
    for row in corpus:
        if "body" in row:
            assert row["body"] == chunks[row["id"]].text != row["text"]

    rankings, recipe = _gate(files, fake_embedder, monkeypatch)
    assert recipe is not None  # hybrid: both sides judge
    chunk_of = {r["doc"]: r["id"] for r in corpus}
    run = rankings.run(recipe)
    per_question = score(rankings, run)[1]
    for i in titles:
        question, (gold,) = held[i]["question"], held[i]["gold"]
        assert question == f"Volcano lava {gold[1:]}"
        # Its only overlap with its document is the title: the chunk text shares no keyword
        # (cosine 0) and no term, so the lava document is first and the gold one is not.
        assert dict(rankings.dense[i])[chunk_of[gold]] == pytest.approx(0.0)
        assert chunk_of[gold] not in dict(rankings.lexical[i])
        assert run[str(i)][0] == "lava" and per_question[i] < 1.0
    # Labelled questions keep the full representations: the title's number finds the gold
    # chunk first on the lexical side, and its titled vector shares the keywords.
    for i in users:
        (gold,) = held[i]["gold"]
        assert held[i]["question"] in labelled
        assert rankings.lexical[i][0][0] == chunk_of[gold]
        assert dict(rankings.dense[i])[chunk_of[gold]] > 0.5

    # The rule as it was (titles everywhere) let every title question's own title find it.
    vecs = np.load(files.current_vectors)
    questions = [h["question"] for h in held]
    qv = fake_embedder.embed(questions, is_query=True)
    ids = [r["id"] for r in corpus]
    lexical = fake_runtime.catalog.lexical
    assert lexical is not None
    titled_lex = lexical_rankings(lexical.search, questions, recipe.depth, rankings.doc_of)
    titled_dense = dense_rankings(ids, vecs, qv, recipe.depth)
    for i in titles:
        gold_chunk = chunk_of[held[i]["gold"][0]]
        assert titled_lex[i][0][0] == gold_chunk
        assert dict(titled_dense[i])[gold_chunk] > 0.5

    # On the title questions alone, a recipe leaning lexical scored a perfect 1.0 before
    # (tuning would pick it for any model); judged without titles, the lava document and the
    # other 25 documents' titled chunks (cosine 0.63) push every gold one out of the top 10.
    def on_titles(dense: list[Any], lex: list[Any]) -> dict[str, float]:
        picked = Rankings(
            [dense[i] for i in titles],
            [lex[i] for i in titles],
            rankings.doc_of,
            [rankings.gold[i] for i in titles],
        )
        return tune(picked, recipe_grid(recipe)).table

    assert on_titles(titled_dense, titled_lex)["weighted:0.3"] == 1.0
    assert set(on_titles(list(rankings.dense), list(rankings.lexical)).values()) == {0.0}


def test_an_older_job_reads_the_untitled_text_from_the_catalog(
    gate_job: tuple[JobFiles, list[str]],
    fake_embedder: KeywordEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ``--gate-only`` re-judges jobs written before corpus rows carried the untitled text
    files, _ = gate_job
    new, _ = _gate(files, fake_embedder, monkeypatch)
    older = [{k: v for k, v in row.items() if k != "body"} for row in files.read_corpus()]
    old, _ = _gate(files, fake_embedder, monkeypatch, older)
    assert old.dense == new.dense and old.lexical == new.lexical


def test_untitled_questions_search_their_own_vectors_in_question_order() -> None:
    ids = ["a", "b"]
    titled = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    untitled = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    queries = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    found = dense_rankings(ids, titled, queries, 2, [False, True, False], untitled)
    assert [r[0] for r in found] == [("a", 1.0), ("a", 0.0), ("a", 1.0)]
    assert [c for c, _ in found[1]] == ["a", "b"]
    # without flags every question searches the titled vectors, as before
    assert dense_rankings(ids, titled, queries, 1) == [[("a", 1.0)]] * 3
    with pytest.raises(ValueError, match="untitled vectors"):
        dense_rankings(ids, titled, queries, 2, [True, False, False])

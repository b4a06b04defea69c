import json
import random
from pathlib import Path

import pytest

from ragloop.core.runtime import Runtime
from ragloop.core.storage.querylog import QueryLog
from ragloop.finetune.options import RetrainOptions
from ragloop.finetune.pairs import (
    MAX_HELDOUT,
    MIN_HELDOUT,
    Pair,
    build_training_set,
    mask_span,
    split_heldout,
)
from ragloop.finetune.synthetic import (
    OFFLINE_METHOD,
    SyntheticQuestions,
    offline_questions,
    parse_questions,
)
from ragloop.ingest.pipeline import Ingestor
from tests.ingest.samples import write_corpus


@pytest.fixture
def fake_runtime(fake_runtime_any: Runtime) -> Runtime:
    """Every test here runs once on a SQLite catalog and once on a PostgreSQL one."""
    return fake_runtime_any


def _ingest_many(rt: Runtime, tmp_path: Path, n: int = 40) -> None:
    words = [
        "scurvy",
        "vitamin",
        "citrus",
        "ocean",
        "whale",
        "coral",
        "reef",
        "volcano",
        "lava",
        "magma",
    ]
    corpus = tmp_path / "corpus.jsonl"
    with corpus.open("w") as fh:
        for i in range(n):
            a, b = words[i % 10], words[(i * 3 + 1) % 10]
            text = (
                f"The {a} and the {b} are discussed here in detail. "
                f"Sentence {i} about {a} keeps going on."
            )
            fh.write(
                json.dumps({"_id": f"d{i}", "title": f"All about {a} {i}", "text": text}) + "\n"
            )
    Ingestor(rt).ingest([corpus, write_corpus(tmp_path / "docs")])


def test_offline_questions_are_title_and_cropped_sentences(
    fake_runtime: Runtime, tmp_path: Path
) -> None:
    _ingest_many(fake_runtime, tmp_path)
    chunk = fake_runtime.catalog.chunks_of("d3")[0]
    qs = offline_questions(chunk, 2)
    assert qs[0] == "All about ocean 3"
    assert qs[1] in chunk.text
    assert offline_questions(chunk, 2) == qs  # deterministic per chunk


def test_offline_title_goes_with_the_first_chunk_only(
    fake_runtime: Runtime, tmp_path: Path
) -> None:
    long = " ".join(f"Sentence {i} says the ocean and the whale swim far away." for i in range(12))
    corpus = tmp_path / "long.jsonl"
    corpus.write_text(json.dumps({"_id": "L", "title": "Whales of the ocean", "text": long}))
    Ingestor(fake_runtime).ingest([corpus])
    chunks = fake_runtime.catalog.chunks_of("L")
    assert len(chunks) >= 3
    assert offline_questions(chunks[0], 1) == ["Whales of the ocean"]
    for later in chunks[1:]:
        (q,) = offline_questions(later, 1)
        assert q != "Whales of the ocean" and q in later.text


def test_mask_span_removes_the_question_from_its_positive() -> None:
    text = "Whales of the ocean\nWhales sing long songs that carry across whole ocean basins."
    assert mask_span(text, "Whales of the ocean") == (
        "Whales sing long songs that carry across whole ocean basins."
    )
    assert mask_span(text, "not there") == text
    # a span that is nearly the whole chunk leaves nothing to learn from: keep the chunk
    assert mask_span("Short title\nTiny.", "Short title") == "Short title\nTiny."


def test_synthetic_sampling_covers_each_document_before_second_chunks(
    fake_runtime: Runtime, tmp_path: Path
) -> None:
    _ingest_many(fake_runtime, tmp_path, n=30)
    docs = fake_runtime.catalog.counts()["documents"]
    log = QueryLog(fake_runtime.catalog.engine)
    opts = RetrainOptions(hard_negatives=False, max_synthetic_chunks=docs, sources=["synthetic"])
    data = build_training_set(fake_runtime, log, opts, None)
    ids = [p.chunk_id for p in data.train] + [c[0] for _, c in data.heldout]
    chunks = fake_runtime.catalog.get_chunks(ids)
    assert {chunks[i].seq for i in ids} == {0}


def test_synthetic_questions_are_cached_per_chunk(fake_runtime: Runtime, tmp_path: Path) -> None:
    _ingest_many(fake_runtime, tmp_path)
    chunks = [c for b in fake_runtime.catalog.iter_chunks() for c in b][:10]
    first = SyntheticQuestions(fake_runtime.catalog.engine, None, 1)
    out = first.for_chunks(chunks)
    assert first.method == OFFLINE_METHOD and first.generated == 10 and first.cached == 0
    again = SyntheticQuestions(fake_runtime.catalog.engine, None, 1)
    assert again.for_chunks(chunks) == out and again.generated == 0 and again.cached == 10


def test_parse_questions_strips_numbering() -> None:
    reply = "1. What causes scurvy?\n2) Why did sailors get sick?\n- What prevents scurvy?\n\nok"
    assert parse_questions(reply, 5) == [
        "What causes scurvy?",
        "Why did sailors get sick?",
        "What prevents scurvy?",
    ]


def test_training_set_from_feedback_and_synthetic(fake_runtime: Runtime, tmp_path: Path) -> None:
    _ingest_many(fake_runtime, tmp_path, n=400)
    log = QueryLog(fake_runtime.catalog.engine)
    gold = fake_runtime.catalog.chunks_of("d7")[0]
    for i in range(12):
        log.add_pair(f"labelled question {i}", gold.id, "feedback", None)
    log.add_pair("stale question", "no-such-chunk", "feedback", None)
    data = build_training_set(fake_runtime, log, RetrainOptions(), None)
    m = data.manifest
    assert m["sources"]["labelled"] == 12  # the pair whose chunk is gone is dropped
    assert m["sources"]["pseudo"] == "skipped: no LLM generator configured"
    assert m["synthetic_method"].startswith(OFFLINE_METHOD)
    # offline crops are masked out of their chunk; titles stay (every chunk carries its title)
    chunks = fake_runtime.catalog.get_chunks([p.chunk_id for p in data.train])
    for p in data.train:
        assert p.masked == (p.source == "synthetic" and p.question != chunks[p.chunk_id].title)
    assert any(p.masked for p in data.train) and any(
        p.source == "synthetic" and not p.masked for p in data.train
    )
    assert m["heldout_queries"] == len(data.heldout) >= 60
    held_q = {q for q, _ in data.heldout}
    # labelled pairs are held out first, and a held-out question is never trained on
    assert sum(q.startswith("labelled") for q in held_q) == 2
    # feedback questions were picked by serving's misses: they judge, they never tune a recipe
    assert data.feedback_only == {q for q in held_q if q.startswith("labelled")}
    assert m["recipe_questions"] == len(data.heldout) - 2
    assert not held_q & {p.question for p in data.train}
    assert m["hard_negatives"] > 0
    for p in data.train:
        if p.negative_id:
            neg = fake_runtime.catalog.get_chunks([p.negative_id])[p.negative_id]
            pos = fake_runtime.catalog.get_chunks([p.chunk_id])[p.chunk_id]
            assert neg.document_id != pos.document_id


def test_heldout_uses_everything_for_training_with_a_gate_dataset() -> None:
    pairs = [Pair(f"q{i}", f"c{i}", "synthetic") for i in range(100)]
    train, held = split_heldout([], [], pairs, RetrainOptions(gate_dataset="/x"), random.Random(0))
    assert len(train) == 100 and held == []


def test_shuffled_positives_move_chunks(fake_runtime: Runtime, tmp_path: Path) -> None:
    _ingest_many(fake_runtime, tmp_path, n=100)
    log = QueryLog(fake_runtime.catalog.engine)
    right = build_training_set(fake_runtime, log, RetrainOptions(hard_negatives=False), None)
    wrong = build_training_set(
        fake_runtime, log, RetrainOptions(hard_negatives=False, shuffle_positives=True), None
    )
    assert wrong.manifest["shuffled_positives"] is True
    same = sum(a.chunk_id == b.chunk_id for a, b in zip(right.train, wrong.train, strict=True))
    assert same < len(right.train) * 0.2


def test_heldout_takes_a_fifth_of_labelled_pairs_up_to_a_cap() -> None:
    few = [Pair(f"q{i}", f"c{i}", "labelled") for i in range(100)]
    syn = [Pair(f"s{i}", f"x{i}", "synthetic") for i in range(1000)]
    train, held = split_heldout(few, [], syn, RetrainOptions(), random.Random(0))
    assert sum(q.startswith("q") for q, _ in held) == 20
    assert len(held) == MIN_HELDOUT and len(train) == 1100 - MIN_HELDOUT
    train, _ = split_heldout(few, [], [], RetrainOptions(labelled_repeats=3), random.Random(0))
    assert len(train) == 80 * 3 and len({p.question for p in train}) == 80
    many = [Pair(f"q{i}", f"c{i}", "labelled") for i in range(5000)]
    train, held = split_heldout(many, [], [], RetrainOptions(), random.Random(0))
    assert len(held) == MAX_HELDOUT and len(train) == 5000 - MAX_HELDOUT

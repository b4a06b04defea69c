"""``ragloop pairs import``: a BEIR split's judgements become labelled pairs, once each."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ragloop.cli.main import app
from ragloop.core.runtime import Runtime
from ragloop.core.storage.querylog import QueryLog
from ragloop.eval.datasets import load_beir
from ragloop.finetune.imports import import_beir_pairs
from ragloop.finetune.options import RetrainOptions
from ragloop.finetune.pairs import build_training_set
from ragloop.ingest.pipeline import Ingestor

LONG = " ".join(
    [f"Sentence {i} tells how the whale swims in the ocean." for i in range(6)]
    + [f"Sentence {i} tells how lava and magma leave the volcano." for i in range(6)]
)


def _dataset(tmp_path: Path) -> Path:
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    docs = [
        {"_id": "S", "title": "Scurvy", "text": "Sailors got scurvy without citrus vitamin."},
        {"_id": "L", "title": "Earth and sea", "text": LONG},
    ]
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    queries = [
        {"_id": "q1", "text": "where does lava come from"},
        {"_id": "q2", "text": "what cured scurvy"},
        {"_id": "q3", "text": "a question about apples"},
    ]
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    # q3's document is in the dataset's qrels but was never ingested into the store.
    rows = ["query-id\tcorpus-id\tscore", "q1\tL\t1", "q2\tS\t1", "q3\tX\t1", "q2\tL\t0"]
    (root / "qrels" / "train.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_each_judgement_becomes_a_pair_with_the_documents_best_chunk(
    fake_runtime: Runtime, tmp_path: Path
) -> None:
    root = _dataset(tmp_path)
    Ingestor(fake_runtime).ingest([root / "corpus.jsonl"])
    chunks = fake_runtime.catalog.chunks_of("L")
    assert len(chunks) >= 3, "the long document must span several chunks"
    log = QueryLog(fake_runtime.catalog.engine)
    seen: list[tuple[str, int, int]] = []

    report = import_beir_pairs(
        fake_runtime, log, load_beir(root, "train"), lambda *report: seen.append(report)
    )

    assert (report.questions, report.judgements, report.pairs_added) == (3, 3, 2)
    assert report.unknown_documents == 1 and report.unknown_examples == ["X"]
    assert report.questions_without_pairs == 1
    assert seen[0] == ("importing questions", 0, 3)
    assert seen[-1] == ("importing questions", 3, 3)
    pairs = {p["question"]: p for p in log.pairs("import")}
    assert set(pairs) == {"where does lava come from", "what cured scurvy"}
    lava_chunk = fake_runtime.catalog.get_chunks([pairs["where does lava come from"]["chunk_id"]])
    assert "lava" in next(iter(lava_chunk.values())).text  # not the whale half of L
    assert pairs["what cured scurvy"]["chunk_id"] == fake_runtime.catalog.chunks_of("S")[0].id
    assert log.pairs("feedback") == []

    again = import_beir_pairs(fake_runtime, log, load_beir(root, "train"))
    assert (again.pairs_added, again.already_present) == (0, 2)
    assert len(log.pairs()) == 2


def test_imported_pairs_train_as_labelled_and_are_counted_by_origin(
    fake_runtime: Runtime, tmp_path: Path
) -> None:
    root = _dataset(tmp_path)
    Ingestor(fake_runtime).ingest([root / "corpus.jsonl"])
    log = QueryLog(fake_runtime.catalog.engine)
    import_beir_pairs(fake_runtime, log, load_beir(root, "train"))

    ts = build_training_set(
        fake_runtime, log, RetrainOptions(sources=["labelled"], hard_negatives=False), None
    )

    assert ts.manifest["sources"]["labelled"] == 2
    assert ts.manifest["labelled_origin"] == {"feedback": 0, "import": 2}
    questions = {p.question for p in ts.train} | {q for q, _ in ts.heldout}
    assert questions == {"where does lava come from", "what cured scurvy"}


def test_cli_import_errors_are_one_line_and_count_starts_empty(tmp_path: Path) -> None:
    data = tmp_path / "data"
    root = _dataset(tmp_path)
    runner = CliRunner()
    args = ["pairs", "import", str(root), "--split", "dev", "--data-dir", str(data)]
    bad = runner.invoke(app, args)
    assert bad.exit_code == 1
    lines = bad.output.strip().splitlines()
    assert len(lines) == 1 and "no split 'dev' (splits here: train)" in lines[0]
    assert not data.exists()  # refused before the data dir was touched

    empty = runner.invoke(app, ["pairs", "count", "--data-dir", str(data), "--json"])
    assert empty.exit_code == 0 and json.loads(empty.output) == {}

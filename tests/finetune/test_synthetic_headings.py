"""Offline synthetic questions: a section's heading is the question its chunk answers."""

from pathlib import Path

from ragloop.core.records import ChunkRecord
from ragloop.core.runtime import Runtime
from ragloop.finetune.synthetic import offline_questions
from ragloop.ingest.pipeline import Ingestor


def _chunk(title: str, seq: int = 3) -> ChunkRecord:
    text = "Sailors on long voyages lacked fresh fruit for many months at sea. Citrus helped."
    return ChunkRecord("c1", "d", seq, text, title, 0, len(text), 20)


def test_a_section_heading_comes_first() -> None:
    qs = offline_questions(_chunk("Scurvy > Causes > Why did sailors fall ill?"), 2)
    assert qs[0] == "Why did sailors fall ill?"
    assert qs[1] in _chunk("").text


def test_without_a_usable_heading_the_old_method_applies() -> None:
    # a one-word heading says too little: the first chunk gets its document title instead
    assert offline_questions(_chunk("Scurvy at sea > Causes", seq=0), 1) == ["Scurvy at sea"]
    (crop,) = offline_questions(_chunk("Scurvy at sea > Causes"), 1)
    assert crop in _chunk("").text
    assert offline_questions(_chunk("Scurvy at sea", seq=0), 1) == ["Scurvy at sea"]


def test_ingested_markdown_sections_give_their_headings(
    fake_runtime: Runtime, tmp_path: Path
) -> None:
    body = "Sailors lacked vitamin from citrus on long ocean voyages, and scurvy followed."
    (tmp_path / "scurvy.md").write_text(
        f"# Scurvy\n\n{body}\n\n## What prevents scurvy?\n\n{body} {body}\n"
    )
    Ingestor(fake_runtime).ingest([tmp_path / "scurvy.md"])
    chunks = [c for b in fake_runtime.catalog.iter_chunks() for c in b]
    questions = {q for c in chunks for q in offline_questions(c, 1)}
    assert "What prevents scurvy?" in questions

"""No stored chunk exceeds the active model's max_seq_length in its own tokenizer."""

from pathlib import Path

import pytest

from ragloop.core.runtime import open_runtime
from ragloop.core.settings import Settings
from ragloop.ingest.pipeline import Ingestor
from ragloop.ingest.verify import check_index

pytestmark = pytest.mark.integration


def test_stored_chunks_fit_the_model(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    long_words = " ".join(["Pneumonoultramicroscopicsilicovolcanoconiosis"] * 400)
    (root / "words.txt").write_text(long_words)
    (root / "nospace.txt").write_text("ab" * 6000)
    (root / "mixed.md").write_text(
        "# Proteins\n\n"
        + "\n\n".join(
            f"## Part {i}\n\n" + "Mice lacking the gene showed deficits. " * 60 for i in range(6)
        )
    )
    (root / "corpus.jsonl").write_text(
        '{"_id": "1", "title": "'
        + "Very long title " * 40
        + '", "text": "'
        + "Cells divide. " * 500
        + '"}\n'
    )
    rt = open_runtime(Settings(data_dir=tmp_path / "data"))
    try:
        report = Ingestor(rt).ingest([root])
        assert report.added == 4 and not report.failed
        tok = rt.active_index().embedder.tokenizer  # type: ignore[attr-defined]
        limit = rt.active_index().embedder.max_seq_length
        for batch in rt.catalog.iter_chunks():
            for chunk in batch:
                assert len(tok(chunk.embedding_input)["input_ids"]) <= limit
        check = check_index(rt)
        assert check.ok and check.chunks > 20 and check.max_tokens <= limit
    finally:
        rt.close()

"""Tiny BEIR datasets written by the tests themselves (never the shared data)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

# Words from tests.fakes.DEFAULT_VOCAB, so the keyword fake ranks them predictably.
KEYWORD_CORPUS = [
    {"_id": "d1", "title": "", "text": "scurvy vitamin citrus sailors"},
    {"_id": "d2", "title": "", "text": "ocean whale"},
    {"_id": "d3", "title": "", "text": "coral reef ocean"},
    {"_id": "d4", "title": "", "text": "volcano lava magma"},
    {"_id": "d5", "title": "", "text": "python snake"},
    {"_id": "d6", "title": "", "text": "train rail"},
    {"_id": "d7", "title": "", "text": "apple orange banana"},
    {"_id": "d8", "title": "", "text": "bread flour yeast"},
]
KEYWORD_QUERIES = [
    {"_id": "q1", "text": "scurvy vitamin", "metadata": {"answers": ["Vitamin C"]}},
    {"_id": "q2", "text": "ocean", "metadata": {"answer": "whales and reefs"}},
    {"_id": "q3", "text": "lava bread", "metadata": {}},
]
# q2 is graded: the reef document (grade 2) ranks below the whale document (grade 1).
KEYWORD_QRELS = [("q1", "d1", 1), ("q2", "d3", 2), ("q2", "d2", 1), ("q3", "d8", 1)]


def write_beir(
    root: Path,
    corpus: Iterable[Mapping[str, object]] = KEYWORD_CORPUS,
    queries: Iterable[Mapping[str, object]] = KEYWORD_QUERIES,
    qrels: Mapping[str, Sequence[tuple[str, str, int]]] | None = None,
    header: str = "query-id\tcorpus-id\tscore",
) -> Path:
    """Write corpus.jsonl, queries.jsonl and qrels/<split>.tsv under ``root``."""
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    for split, rows in (qrels or {"test": KEYWORD_QRELS}).items():
        lines = ([header] if header else []) + [f"{q}\t{d}\t{s}" for q, d, s in rows]
        (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root

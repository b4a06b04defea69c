"""``best_chunk``: a document named by feedback or an import resolves to its best chunk."""

from pathlib import Path

import numpy as np

from ragloop.core.retriever import best_chunk
from ragloop.core.storage.vectors import ChromaStore, HnswParams


def _never() -> np.ndarray:
    raise AssertionError("a single chunk needs no question vector")


def test_best_chunk_by_exact_cosine_and_the_model_only_when_there_is_a_choice(
    tmp_path: Path,
) -> None:
    store = ChromaStore.embedded(str(tmp_path / "chroma"), HnswParams())
    vecs = np.eye(3, dtype=np.float32)
    store.upsert("col1", ["a", "b", "c"], vecs, [{"document_id": "d"}] * 3)

    assert best_chunk(store, "col1", {"a", "b", "c"}, lambda: np.array([0, 0.6, 0.8])) == "c"
    assert best_chunk(store, "col1", {"a", "b"}, lambda: np.array([0, 0.6, 0.8])) == "b"
    assert best_chunk(store, "col1", {"only"}, _never) == "only"
    assert best_chunk(store, "col1", set(), _never) is None
    assert best_chunk(store, "col1", {"x", "y"}, lambda: np.ones(3)) is None  # no stored vectors

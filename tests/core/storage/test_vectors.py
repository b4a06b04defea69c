from pathlib import Path

import numpy as np
import pytest

from ragloop.core.storage.vectors import ChromaStore, HnswParams, collection_name


@pytest.fixture
def store(tmp_path: Path) -> ChromaStore:
    return ChromaStore.embedded(str(tmp_path / "chroma"), HnswParams())


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_collection_name_is_chroma_safe() -> None:
    name = collection_name("ab12cd34", "v 2/ft:lora")
    assert name == "rl-ab12cd34-v-2-ft-lora"


def test_upsert_query_delete_with_cosine_scores(store: ChromaStore) -> None:
    vecs = _unit(np.array([[1, 0, 0], [0.8, 0.6, 0], [0, 0, 1]], dtype=np.float32))
    store.upsert(
        "col1",
        ["a", "b", "c"],
        vecs,
        [{"document_id": "d1"}, {"document_id": "d2"}, {"document_id": "d1"}],
    )
    hits = store.query("col1", np.array([1, 0, 0], dtype=np.float32), 2)
    assert [h[0] for h in hits] == ["a", "b"]
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert hits[1][1] == pytest.approx(0.8, abs=1e-5)
    only_d1 = store.query("col1", np.array([1, 0, 0], dtype=np.float32), 3, {"document_id": "d1"})
    assert [h[0] for h in only_d1] == ["a", "c"]
    store.upsert("col1", ["a"], vecs[:1], [{"document_id": "d1", "source": "s"}])
    both = {"document_id": "d1", "source": "s"}
    assert [h[0] for h in store.query("col1", vecs[0], 3, both)] == ["a"]
    store.delete("col1", ["a", "missing"])
    assert store.ids("col1") == {"b", "c"}
    assert store.count("col1") == 2
    assert store.query("nope-missing", np.array([1, 0, 0], dtype=np.float32), 2) == []
    store.drop("col1")
    assert "col1" not in store.collections()


def test_hnsw_settings_give_high_recall(store: ChromaStore) -> None:
    """Our HNSW parameters keep top-10 recall against exact search at 0.99 or more."""
    rng = np.random.default_rng(0)
    # Clustered data like real embeddings (random uniform vectors have no neighbourhoods).
    centers = rng.normal(size=(50, 64))
    data = _unit(centers[rng.integers(0, 50, 4000)] + 0.6 * rng.normal(size=(4000, 64)))
    ids = [str(i) for i in range(len(data))]
    store.upsert("rrr", ids, data, [{"n": i} for i in range(len(data))])
    queries = _unit(centers[rng.integers(0, 50, 100)] + 0.6 * rng.normal(size=(100, 64)))
    exact = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    recall = np.mean(
        [
            len({int(i) for i, _ in store.query("rrr", q, 10)} & set(exact[n].tolist())) / 10
            for n, q in enumerate(queries)
        ]
    )
    assert recall >= 0.99

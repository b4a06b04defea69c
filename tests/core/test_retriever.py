"""The retriever: dense, lexical and hybrid search; ``best_chunk`` for feedback and imports."""

from pathlib import Path

import numpy as np
import pytest

from ragloop.core.fusion import FusionRecipe, RetrievalMode
from ragloop.core.records import Hit
from ragloop.core.retriever import best_chunk, best_dense_score, search
from ragloop.core.runtime import Runtime
from ragloop.core.storage.vectors import ChromaStore, HnswParams
from ragloop.ingest.pipeline import Ingestor


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


# ---- dense, lexical and hybrid search over a real catalog and Chroma (fake embedder) --------

DOCS = {
    "d2": "kraken whale ocean",  # dense (whale query) 0.707; BM25 best for "whale kraken"
    "d4": "whale whale coral",  # dense 0.894; BM25 whale only
    "d3": "banana bread flour",
    "d5": "volcano lava magma",
}


def _ingest(rt: Runtime, tmp_path: Path) -> dict[str, str]:
    for name, body in DOCS.items():
        (tmp_path / f"{name}.txt").write_text(body)
    Ingestor(rt).ingest([tmp_path / f"{name}.txt" for name in DOCS])
    chunk_doc = {}
    for batch in rt.catalog.iter_chunks():
        for c in batch:
            chunk_doc[c.id] = Path(rt.catalog.get_document(c.document_id).path).stem  # type: ignore[union-attr]
    return chunk_doc


def _search(rt: Runtime, q: str, k: int = 4, mode: RetrievalMode | None = None) -> list[Hit]:
    return search(rt.active_index(), rt.store, rt.catalog, q, k, mode=mode)


def test_dense_mode_scores_cosines_and_no_lexical_side(
    tmp_path: Path, fake_runtime: Runtime
) -> None:
    doc = _ingest(fake_runtime, tmp_path)
    hits = _search(fake_runtime, "whale kraken", mode="dense")
    assert [doc[h.chunk.id] for h in hits[:2]] == ["d4", "d2"]
    assert hits[0].score == pytest.approx(2 / np.sqrt(5), abs=1e-5) == hits[0].dense_score
    assert all(h.lexical_score is None for h in hits)


def test_lexical_mode_ranks_by_bm25_with_exact_cosines(
    tmp_path: Path, fake_runtime_any: Runtime
) -> None:
    fake_runtime = fake_runtime_any  # SQLite, then PostgreSQL
    doc = _ingest(fake_runtime, tmp_path)
    hits = _search(fake_runtime, "whale kraken", mode="lexical")
    assert [doc[h.chunk.id] for h in hits] == ["d2", "d4"]  # only chunks with a term
    assert hits[0].score == hits[0].lexical_score and hits[0].lexical_score > hits[1].score
    # Its cosine, from the stored vector: (whale) . (whale + ocean) / sqrt(2)
    assert hits[0].dense_score == pytest.approx(1 / np.sqrt(2), abs=1e-5)
    assert _search(fake_runtime, "kraken", mode="lexical")[0].dense_score == pytest.approx(0.0)
    assert _search(fake_runtime, "the of what", mode="lexical") == []


def test_hybrid_is_the_default_and_uses_the_active_versions_recipe(
    tmp_path: Path, fake_runtime_any: Runtime
) -> None:
    fake_runtime = fake_runtime_any  # SQLite, then PostgreSQL: hybrid on both
    doc = _ingest(fake_runtime, tmp_path)
    index = fake_runtime.active_index()
    assert index.retrieval == "hybrid" and index.fusion == FusionRecipe()
    assert index.version.fusion == FusionRecipe().to_dict()  # the base version carries it
    # Unknown to the embedder, "kraken" is found by BM25 alone; fused, it comes first.
    top = _search(fake_runtime, "kraken")[0]
    assert doc[top.chunk.id] == "d2" and top.lexical_score is not None
    # weighted 0.5: BM25 normalised to 1 (its best) is half the score, the dense side the rest
    assert 0.5 <= top.score <= 1.0
    # A recipe stored on the version changes the ranking after the pointer is re-read,
    # together with the version: weighted, dense normalised d4 1, d2 0.79; BM25 d2 1, d4 0.
    fake_runtime.catalog.set_fusion("base", {"method": "weighted", "dense_weight": 0.3})
    fake_runtime.refresh()
    assert fake_runtime.active_index().fusion.method == "weighted"
    assert [doc[h.chunk.id] for h in _search(fake_runtime, "whale kraken")][:2] == ["d2", "d4"]
    fake_runtime.catalog.set_fusion("base", {"method": "weighted", "dense_weight": 0.9})
    fake_runtime.refresh()
    hits = _search(fake_runtime, "whale kraken")
    assert [doc[h.chunk.id] for h in hits][:2] == ["d4", "d2"]
    assert hits[0].score == pytest.approx(0.9) and hits[0].dense_score == pytest.approx(
        2 / np.sqrt(5), abs=1e-5
    )


def test_filters_apply_to_both_sides(tmp_path: Path, fake_runtime_any: Runtime) -> None:
    fake_runtime = fake_runtime_any
    doc = _ingest(fake_runtime, tmp_path)
    d4 = next(c for c, name in doc.items() if name == "d4")
    d4_doc = fake_runtime.catalog.get_chunks([d4])[d4].document_id
    for mode in ("dense", "lexical", "hybrid"):
        hits = search(
            fake_runtime.active_index(),
            fake_runtime.store,
            fake_runtime.catalog,
            "whale kraken",
            4,
            {"document_id": d4_doc},
            mode=mode,
        )
        assert [h.chunk.id for h in hits] == [d4], mode


def test_miss_flags_use_the_best_dense_cosine(tmp_path: Path, fake_runtime: Runtime) -> None:
    _ingest(fake_runtime, tmp_path)
    hits = _search(fake_runtime, "kraken")  # BM25 finds it; no keyword of the embedder
    assert hits and hits[0].lexical_score is not None
    best = best_dense_score(hits)
    assert best is not None and best < 0.4 <= fake_runtime.settings.miss_score_threshold
    assert best_dense_score(_search(fake_runtime, "whale")) == pytest.approx(
        2 / np.sqrt(5), abs=1e-5
    )
    assert best_dense_score([]) is None

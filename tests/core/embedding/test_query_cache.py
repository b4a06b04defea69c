"""The query-embedding LRU: hits skip the model, keys separate versions, size 0 is off."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ragloop.core.embedding.query_cache import QueryCache
from ragloop.core.retriever import search
from ragloop.core.runtime import Runtime, open_runtime
from ragloop.core.settings import Settings
from ragloop.ingest.pipeline import Ingestor
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder, fake_registry


def _counting() -> tuple[list[str], Callable[[str], np.ndarray]]:
    seen: list[str] = []

    def compute(text: str) -> np.ndarray:
        seen.append(text)
        return np.array([float(len(seen))], dtype=np.float32)

    return seen, compute


def test_lru_evicts_least_recently_used_and_keys_by_version() -> None:
    cache = QueryCache(2)
    seen, compute = _counting()
    a = cache.get_or_compute("v1", "a", compute)
    cache.get_or_compute("v1", "b", compute)
    assert cache.get_or_compute("v1", "a", compute) is a
    cache.get_or_compute("v1", "c", compute)  # evicts b, the least recently used
    cache.get_or_compute("v1", "b", compute)
    cache.get_or_compute("v2", "a", compute)  # another version never reuses v1's vector
    assert seen == ["a", "b", "c", "b", "a"]
    assert (cache.hits, cache.misses, len(cache)) == (1, 5, 2)
    with pytest.raises(ValueError):
        a[0] = 0.0  # shared vectors are read-only


def test_size_zero_turns_caching_off() -> None:
    cache = QueryCache(0)
    seen, compute = _counting()
    for _ in range(3):
        cache.get_or_compute("v1", "a", compute)
    assert seen == ["a", "a", "a"] and len(cache) == 0


@pytest.mark.parametrize("size, encodes", [(8, 1), (0, 3)])
def test_repeated_search_encodes_once(tmp_path: Path, size: int, encodes: int) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Retrieval\n\nChroma stores vectors for search.\n")
    emb = KeywordEmbedder(DEFAULT_VOCAB)
    settings = Settings(data_dir=tmp_path / "data", embedder="fake-keyword", query_cache_size=size)
    rt: Runtime = open_runtime(settings, registry=fake_registry(emb))
    try:
        Ingestor(rt).ingest([tmp_path / "docs"])
        index = rt.active_index()
        emb.calls.clear()
        results = [search(index, rt.store, rt.catalog, "chroma vectors", k=1) for _ in range(3)]
        assert len(emb.calls) == encodes
        assert all(r[0].chunk.id == results[0][0].chunk.id for r in results)
    finally:
        rt.close()

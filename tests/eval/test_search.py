"""Exact search, Matryoshka truncation and chunk-to-document ranking."""

from __future__ import annotations

import numpy as np
import pytest

from ragloop.core.errors import InvalidInputError
from ragloop.eval.search import ExactIndex, best_per_document, parse_dims, truncate


def test_truncate_keeps_the_prefix_at_unit_length() -> None:
    v = np.array([[0.6, 0.0, 0.8], [0.0, 0.0, 1.0]], dtype=np.float32)
    t = truncate(v, 2)
    assert t.shape == (2, 2)
    assert np.allclose(t[0], [1.0, 0.0])
    assert np.allclose(t[1], [0.0, 0.0])  # an all-zero prefix stays zero, no NaN
    assert truncate(v, 3) is not v and np.array_equal(truncate(v, 3), v)
    with pytest.raises(InvalidInputError):
        truncate(v, 4)


def test_parse_dims() -> None:
    assert parse_dims("64, 384,256,64") == [384, 256, 64]
    assert parse_dims(None) == [] and parse_dims("") == []
    with pytest.raises(InvalidInputError, match="not a comma-separated list"):
        parse_dims("384,big")
    with pytest.raises(InvalidInputError, match=r"1\.\.384"):
        parse_dims("512", full=384)
    with pytest.raises(InvalidInputError):
        parse_dims("0")


def test_exact_search_orders_by_score_then_id_in_any_batch_size() -> None:
    ids = ["d3", "d1", "d2", "d0"]
    docs = np.array([[1, 0], [0.6, 0.8], [0.6, 0.8], [0, 1]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    for batch in (1, 2, 256):
        got = ExactIndex(ids, docs, query_batch=batch).search(queries, 2)
        assert [d for d, _ in got[0]] == ["d3", "d1"]  # d1 and d2 tie at 0.6: lower id wins
        assert [d for d, _ in got[1]] == ["d0", "d1"]
        assert [d for d, _ in got[2]] == ["d1", "d2"]
        assert got[0][0][1] == pytest.approx(1.0)
    everything = ExactIndex(ids, docs).search(queries[:1], 10)[0]
    assert [d for d, _ in everything] == ["d3", "d1", "d2", "d0"]  # k above n: all of them


def test_ties_across_the_cut_are_resolved_by_id() -> None:
    ids = [f"d{i}" for i in (5, 4, 3, 2, 1)]
    docs = np.ones((5, 1), dtype=np.float32)
    got = ExactIndex(ids, docs).search(np.ones((1, 1), dtype=np.float32), 2)[0]
    assert [d for d, _ in got] == ["d1", "d2"]


def test_best_per_document_keeps_each_documents_best_chunk() -> None:
    hits = [("a", 0.5), ("b", 0.9), ("a", 0.7), ("c", 0.7), ("b", 0.1)]
    assert best_per_document(hits) == [("b", 0.9), ("a", 0.7), ("c", 0.7)]
    assert best_per_document([]) == []

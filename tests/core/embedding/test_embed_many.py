"""``Embedder.embed_many``: length-sorted batches, progress, rows in input order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ragloop.core.embedding.base import sorted_batches
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder


class RecordingEmbedder(KeywordEmbedder):
    """The keyword fake, remembering each batch it was given and whether it was queries."""

    def __init__(self) -> None:
        super().__init__(DEFAULT_VOCAB)
        self.batches: list[tuple[list[str], bool]] = []

    def embed(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        self.batches.append((list(texts), is_query))
        return super().embed(texts, is_query=is_query)


TEXTS = ["whale ocean coral reef", "lava", "bread flour yeast", "scurvy", "apple orange"]


def test_sorted_batches_are_shortest_first_and_stable() -> None:
    assert sorted_batches([5, 1, 3, 1, 2], 2) == [[1, 3], [4, 2], [0]]
    assert sorted_batches([], 4) == []


def test_rows_come_back_in_input_order_from_length_sorted_batches() -> None:
    emb = RecordingEmbedder()
    got = emb.embed_many(TEXTS, 2, is_query=True)
    assert np.array_equal(got, KeywordEmbedder(DEFAULT_VOCAB).embed(TEXTS))
    assert emb.batches == [
        (["lava", "scurvy"], True),
        (["apple orange", "bread flour yeast"], True),
        (["whale ocean coral reef"], True),
    ]


def test_given_lengths_decide_the_batches() -> None:
    # Ingest sorts by token count, which need not follow characters.
    emb = RecordingEmbedder()
    got = emb.embed_many(TEXTS, 3, lengths=[1, 9, 9, 9, 2])
    assert [b for b, _ in emb.batches] == [
        ["whale ocean coral reef", "apple orange", "lava"],
        ["bread flour yeast", "scurvy"],
    ]
    assert not any(q for _, q in emb.batches)
    assert np.array_equal(got, KeywordEmbedder(DEFAULT_VOCAB).embed(TEXTS))


def test_progress_reports_zero_first_then_each_batch() -> None:
    seen: list[tuple[str, int, int]] = []
    RecordingEmbedder().embed_many(TEXTS, 2, lambda *a: seen.append(a), stage="corpus")
    assert seen == [("corpus", 0, 5), ("corpus", 2, 5), ("corpus", 4, 5), ("corpus", 5, 5)]
    empty: list[tuple[str, int, int]] = []
    out = RecordingEmbedder().embed_many([], 8, lambda *a: empty.append(a))
    assert out.shape == (0, len(DEFAULT_VOCAB) + 1) and empty == [("embedding", 0, 0)]


def test_an_embedder_without_a_model_directory_has_no_source_dir() -> None:
    assert KeywordEmbedder().source_dir is None

"""QueryBatcher: overlapping queries share a pass, each gets its own vector and its own errors;
bulk work waits behind queries."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ragloop.core.embedding.query_batcher import (
    BULK_SLICE_TEXTS,
    BULK_SLICE_TOKENS,
    QueryBatcher,
    token_slices,
)
from ragloop.core.retriever import search
from ragloop.core.runtime import Runtime, open_runtime
from ragloop.core.settings import Settings
from ragloop.ingest.pipeline import Ingestor
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder, fake_registry


class _GatedEmbed:
    """Vectors [n] for texts "q n"; the first pass blocks until ``gate`` opens."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.batches: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.gate.wait(10)
        if self.fail_on in texts:
            raise RuntimeError(f"cannot encode {self.fail_on}")
        return np.array([[float(t.split()[1])] for t in texts], dtype=np.float32)


def _wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def _overlapping(batcher: QueryBatcher, embed: _GatedEmbed, n: int) -> dict[int, object]:
    """Query 0 starts a pass that blocks; queries 1..n-1 queue behind it; then the gate opens."""
    results: dict[int, object] = {}

    def ask(i: int) -> None:
        try:
            results[i] = float(batcher.embed_query(f"q {i}")[0])
        except RuntimeError as exc:
            results[i] = exc

    first = threading.Thread(target=ask, args=(0,))
    first.start()
    assert embed.entered.wait(10)
    others = [threading.Thread(target=ask, args=(i,)) for i in range(1, n)]
    for t in others:
        t.start()
    _wait_for(lambda: len(batcher._pending) == n - 1)
    embed.gate.set()
    for t in [first, *others]:
        t.join(10)
        assert not t.is_alive()
    return results


def test_a_lone_query_is_its_own_pass() -> None:
    embed = _GatedEmbed()
    embed.gate.set()
    batcher = QueryBatcher(embed, max_batch=16)
    assert [float(batcher.embed_query(f"q {i}")[0]) for i in range(3)] == [0.0, 1.0, 2.0]
    assert embed.batches == [["q 0"], ["q 1"], ["q 2"]]
    assert (batcher.passes, batcher.queries) == (3, 3)


def test_queries_arriving_during_a_pass_share_the_next_one() -> None:
    embed = _GatedEmbed()
    batcher = QueryBatcher(embed, max_batch=16)
    results = _overlapping(batcher, embed, 8)
    assert results == {i: float(i) for i in range(8)}  # every caller got its own vector
    assert embed.batches[0] == ["q 0"]
    assert sorted(embed.batches[1]) == sorted(f"q {i}" for i in range(1, 8))
    assert (batcher.passes, batcher.queries) == (2, 8)


def test_max_batch_caps_a_pass() -> None:
    embed = _GatedEmbed()
    batcher = QueryBatcher(embed, max_batch=3)
    results = _overlapping(batcher, embed, 8)
    assert results == {i: float(i) for i in range(8)}
    assert [len(b) for b in embed.batches] == [1, 3, 3, 1]


def test_a_failed_pass_fails_only_the_query_that_caused_it_and_nobody_hangs() -> None:
    embed = _GatedEmbed(fail_on="q 3")
    batcher = QueryBatcher(embed, max_batch=16)
    results = _overlapping(batcher, embed, 6)
    assert results[0] == 0.0  # the first pass did not hold the bad query
    # The second pass held it: its neighbours were encoded again without it and got their own
    # vectors; only query 3 sees the error.
    assert isinstance(results[3], RuntimeError) and "q 3" in str(results[3])
    assert {i: results[i] for i in (1, 2, 4, 5)} == {i: float(i) for i in (1, 2, 4, 5)}
    assert ["q 3"] in embed.batches  # narrowed down to the one query the embedder refuses
    assert batcher.queries == 6
    embed.fail_on = None
    assert float(batcher.embed_query("q 9")[0]) == 9.0  # and the batcher still works


def test_a_tokenizer_error_in_a_shared_pass_reaches_its_sender_only() -> None:
    """The reported incident: a lone surrogate makes the tokenizer raise TypeError for the
    whole batch; legitimate queries in that batch must still be answered."""
    gate, entered = threading.Event(), threading.Event()

    def embed(texts: Sequence[str]) -> np.ndarray:
        if not entered.is_set():
            entered.set()
            assert gate.wait(10)
        for t in texts:
            t.encode("utf-8")  # what a Rust tokenizer does: a surrogate cannot be encoded
        return np.array([[float(len(t))] for t in texts], dtype=np.float32)

    batcher = QueryBatcher(embed, max_batch=16)
    results: dict[str, object] = {}

    def ask(text: str) -> None:
        try:
            results[text] = float(batcher.embed_query(text)[0])
        except UnicodeEncodeError as exc:
            results[text] = exc

    first = threading.Thread(target=ask, args=("warm",))
    first.start()
    assert entered.wait(10)
    texts = ["a", "bb", "x \ud800", "dddd", "eeeee"]
    threads = [threading.Thread(target=ask, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    _wait_for(lambda: len(batcher._pending) == len(texts))
    gate.set()
    for t in [first, *threads]:
        t.join(10)
        assert not t.is_alive()
    assert isinstance(results.pop("x \ud800"), UnicodeEncodeError)
    assert results == {t: float(len(t)) for t in ["warm", "a", "bb", "dddd", "eeeee"]}


def test_bulk_work_goes_in_slices_behind_waiting_queries() -> None:
    """An embeddings request's slices and queries share the passes; a query waiting when a
    slice ends goes next, so it never waits for the whole bulk request."""
    embed = _GatedEmbed()
    batcher = QueryBatcher(embed, max_batch=16)
    bulk_texts = [f"q {100 + i}" for i in range(10)]
    bulk: dict[str, np.ndarray] = {}
    holder = threading.Thread(target=lambda: batcher.embed_query("q 0"))
    holder.start()
    assert embed.entered.wait(10)  # a query pass is running: what follows has to queue
    worker = threading.Thread(
        target=lambda: bulk.setdefault("v", batcher.embed_bulk(bulk_texts, embed, max_texts=3))
    )
    worker.start()
    _wait_for(lambda: len(batcher._bulk) == 1)
    asker = threading.Thread(target=lambda: batcher.embed_query("q 7"))
    asker.start()
    _wait_for(lambda: len(batcher._pending) == 1)
    embed.gate.set()
    for t in (holder, worker, asker):
        t.join(10)
        assert not t.is_alive()
    # The query queued after the first slice still ran before it, and every slice was a pass.
    assert embed.batches[:2] == [["q 0"], ["q 7"]]
    assert [len(b) for b in embed.batches[2:]] == [3, 3, 3, 1]
    assert [float(x) for x in bulk["v"][:, 0]] == [100.0 + i for i in range(10)]  # input order
    assert (batcher.bulk_passes, batcher.queries) == (4, 2)


def test_a_query_asked_during_a_bulk_slice_runs_before_the_next_slice() -> None:
    """The embeddings job is running (its first slice is in the embedder) when a query
    arrives: the query is the next pass, ahead of the job's remaining slices."""
    embed = _GatedEmbed()
    batcher = QueryBatcher(embed, max_batch=16)
    bulk_texts = [f"q {100 + i}" for i in range(6)]
    bulk: dict[str, np.ndarray] = {}
    worker = threading.Thread(
        target=lambda: bulk.setdefault("v", batcher.embed_bulk(bulk_texts, embed, max_texts=2))
    )
    worker.start()
    assert embed.entered.wait(10)  # the job's first slice is being encoded
    answers: dict[str, float] = {}
    asker = threading.Thread(
        target=lambda: answers.setdefault("q", float(batcher.embed_query("q 7")[0]))
    )
    asker.start()
    _wait_for(lambda: len(batcher._pending) == 1)
    embed.gate.set()
    for t in (worker, asker):
        t.join(10)
        assert not t.is_alive()
    assert embed.batches == [["q 100", "q 101"], ["q 7"], ["q 102", "q 103"], ["q 104", "q 105"]]
    assert answers == {"q": 7.0}
    assert [float(x) for x in bulk["v"][:, 0]] == [100.0 + i for i in range(6)]


def test_bulk_slices_are_sized_by_tokens() -> None:
    """Long texts go a few to a slice, short ones up to the text cap; every text once."""
    lengths = [256] * 5 + [10] * 100 + [600]
    slices = token_slices(lengths, BULK_SLICE_TOKENS, BULK_SLICE_TEXTS)
    assert sorted(i for s in slices for i in s) == list(range(len(lengths)))
    for s in slices:
        padded = len(s) * max(lengths[i] for i in s)
        assert len(s) <= BULK_SLICE_TEXTS and (padded <= BULK_SLICE_TOKENS or len(s) == 1)
    assert [len(s) for s in slices] == [32, 32, 32, 4, 2, 2, 1, 1]
    assert slices[-1] == [105]  # over the budget alone: a slice of its own


def test_embed_bulk_cuts_by_the_token_lengths_it_is_given() -> None:
    embed = _GatedEmbed()
    embed.gate.set()
    batcher = QueryBatcher(embed, max_batch=16)
    texts = [f"q {i}" for i in range(6)]
    rows = batcher.embed_bulk(texts, embed, [200, 10, 200, 10, 10, 300], max_tokens=400)
    assert embed.batches == [["q 1", "q 3", "q 4"], ["q 0", "q 2"], ["q 5"]]
    assert [float(x) for x in rows[:, 0]] == [float(i) for i in range(6)]
    assert batcher.bulk_passes == 3


def test_a_failing_bulk_slice_fails_its_request_only() -> None:
    embed = _GatedEmbed(fail_on="q 5")
    embed.gate.set()
    batcher = QueryBatcher(embed, max_batch=16)
    try:
        batcher.embed_bulk([f"q {i}" for i in range(8)], embed, max_texts=4)
    except RuntimeError as exc:
        assert "q 5" in str(exc)
    else:
        raise AssertionError("the bulk request should have failed")
    assert float(batcher.embed_query("q 2")[0]) == 2.0


def test_max_batch_one_encodes_in_the_callers_thread() -> None:
    seen: list[str] = []

    def embed(texts: Sequence[str]) -> np.ndarray:
        seen.append(threading.current_thread().name)
        return np.ones((len(texts), 2), dtype=np.float32)

    batcher = QueryBatcher(embed, max_batch=1)
    assert batcher.embed_query("x").shape == (2,)
    assert seen == [threading.current_thread().name]


def test_serving_searches_go_through_one_batcher_per_embedder(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Retrieval\n\nChroma stores vectors for search.\n")
    (tmp_path / "docs" / "b.md").write_text("# Training\n\nLoRA adapters fine-tune a model.\n")
    settings = Settings(data_dir=tmp_path / "data", embedder="fake-keyword", query_cache_size=0)
    rt: Runtime = open_runtime(settings, registry=fake_registry(KeywordEmbedder(DEFAULT_VOCAB)))
    try:
        Ingestor(rt).ingest([tmp_path / "docs"])
        index = rt.active_index()
        assert index.batcher is not None and rt.active_index().batcher is index.batcher
        questions = ["chroma vectors", "lora training"] * 8
        with ThreadPoolExecutor(8) as pool:
            found = list(pool.map(lambda q: search(index, rt.store, rt.catalog, q, k=1), questions))
        titles = [hits[0].document_title for hits in found]
        assert titles == ["Retrieval", "Training"] * 8
        assert index.batcher.queries == len(questions)
    finally:
        rt.close()

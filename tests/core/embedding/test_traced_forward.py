"""The bf16 forward as one TorchScript graph: used when it reproduces eager, else not at all."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
import torch

from ragloop.core.embedding.base import EmbedderOptions
from ragloop.core.embedding.torch_embedder import SentenceTransformerEmbedder, bundled_model_path
from ragloop.core.embedding.traced_forward import trace_pipeline

pytestmark = pytest.mark.integration  # the bundled model

TEXTS = [
    "what causes scurvy",
    "a",
    "Coral reefs grow slowly; warming water bleaches them and kills the algae. " * 20,
    "Revenue grew 12% year over year, driven by subscriptions in Europe (EUR 4.2m).",
]


@pytest.fixture(scope="module")
def bf16() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(bundled_model_path(), EmbedderOptions(precision="bf16"))


def test_bf16_embedder_runs_the_graph_and_never_the_eager_modules(
    bf16: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert bf16.graph is not None
    want = bf16.embed(TEXTS)

    def eager_called(*_a: Any, **_k: Any) -> None:
        raise AssertionError("the eager transformer ran")

    # The graph holds its own compiled copy of the forward: the Python modules are not called.
    monkeypatch.setattr(bf16.model[0], "forward", eager_called)
    got = bf16.embed(TEXTS)
    assert np.array_equal(got, want)


def test_graph_and_eager_give_the_same_vectors(bf16: SentenceTransformerEmbedder) -> None:
    # The same batches both ways (bf16 rounding depends on a batch's padded shape): all four,
    # one alone, and three (padded to four rows and a bucketed width).
    batches = [TEXTS, TEXTS[:1], TEXTS[:3]]
    graph_vecs = [bf16.embed(b) for b in batches]
    graph, bf16.graph = bf16.graph, None
    try:
        eager_vecs = [bf16.embed(b) for b in batches]
    finally:
        bf16.graph = graph
    for got, want in zip(graph_vecs, eager_vecs, strict=True):
        assert float((got * want).sum(axis=1).min()) >= 0.99999


def test_a_graph_that_disagrees_with_eager_is_not_used(
    bf16: SentenceTransformerEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_trace = torch.jit.trace

    def skewed(module: Any, args: Any, **kw: Any) -> Any:
        graph = real_trace(module, args, **kw)
        return lambda *tensors: graph(*tensors) * 1.01  # off by 1%: must be caught

    monkeypatch.setattr(torch.jit, "trace", skewed)
    caplog.set_level(logging.WARNING, logger="ragloop.core.embedding.traced_forward")
    assert trace_pipeline(bf16._pipeline, bf16._inputs, bf16._pad_id) is None
    assert "differs from eager" in caplog.text


def test_an_untraceable_model_runs_eagerly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("tracer exploded")

    monkeypatch.setattr(torch.jit, "trace", broken)
    caplog.set_level(logging.WARNING, logger="ragloop.core.embedding.traced_forward")
    emb = SentenceTransformerEmbedder(bundled_model_path(), EmbedderOptions(precision="bf16"))
    assert emb.graph is None and emb.packed_layers >= 36
    assert "tracer exploded" in caplog.text
    vecs = emb.embed(TEXTS)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_fp32_is_never_traced() -> None:
    # fp32 stays the eager reference that evaluation and the backend choice compare with.
    fp32 = SentenceTransformerEmbedder(bundled_model_path(), EmbedderOptions(precision="fp32"))
    assert fp32.graph is None

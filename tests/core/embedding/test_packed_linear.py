"""Packed bf16 linear layers: the same numbers as torch's bf16 modules, exact GELU fused."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from ragloop.core.embedding.base import EmbedderOptions
from ragloop.core.embedding.packed_linear import pack_for_inference
from ragloop.core.embedding.torch_embedder import SentenceTransformerEmbedder, bundled_model_path


class _Block(torch.nn.Module):
    """A BERT-shaped feed-forward: ``intermediate.dense`` then ``intermediate_act_fn``."""

    def __init__(self, act: torch.nn.Module) -> None:
        super().__init__()
        self.intermediate = torch.nn.Module()
        self.intermediate.dense = torch.nn.Linear(32, 64)
        self.intermediate.intermediate_act_fn = act
        self.out = torch.nn.Linear(64, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block: Any = self.intermediate
        return self.out(block.intermediate_act_fn(block.dense(x)))


@pytest.mark.parametrize(
    ("act", "fused"),
    [(torch.nn.GELU(), True), (torch.nn.GELU(approximate="tanh"), False), (torch.nn.ReLU(), False)],
)
def test_packing_keeps_the_function_and_fuses_only_exact_gelu(
    act: torch.nn.Module, fused: bool
) -> None:
    torch.manual_seed(0)
    plain = _Block(act).to(torch.bfloat16).eval()
    packed = copy.deepcopy(plain)
    assert pack_for_inference(packed) == 2
    assert isinstance(packed.intermediate.intermediate_act_fn, torch.nn.Identity) is fused
    assert not any(isinstance(m, torch.nn.Linear) for m in packed.modules())
    x = torch.randn(2, 7, 32).to(torch.bfloat16)
    with torch.inference_mode():
        want, got = plain(x).float(), packed(x).float()
    assert torch.allclose(got, want, atol=0.03, rtol=0.03)


def test_fp32_layers_are_left_alone() -> None:
    block = _Block(torch.nn.GELU()).eval()
    block.intermediate.dense.to(torch.bfloat16)
    count = pack_for_inference(block)
    assert count == 1  # the bf16 dense (fused with its GELU); the fp32 output layer untouched
    assert isinstance(block.out, torch.nn.Linear)


@pytest.mark.integration
def test_bf16_embedder_packs_the_bundled_model_and_stays_close_to_fp32() -> None:
    fp32 = SentenceTransformerEmbedder(bundled_model_path(), EmbedderOptions(precision="fp32"))
    bf16 = fp32.bf16_copy()
    assert fp32.packed_layers == 0 and not fp32.use_bf16
    # 6 layers x (Q, K, V, attention output, feed-forward in, out) = 36, plus the pooler if any.
    assert bf16.packed_layers >= 36
    assert next(fp32.model.parameters()).dtype == torch.float32  # the copy did not touch it
    texts = ["what causes scurvy", "Coral reefs grow slowly; warming water bleaches them. " * 20]
    cos = (fp32.embed(texts) * bf16.embed(texts)).sum(axis=1)
    assert float(cos.min()) >= 0.999
    # Sub-batches are sorted by length and padded to bucketed shapes (3 rows run as 4, widths
    # rounded up to a multiple of 8); rows still come back in input order, unchanged.
    three = [*texts, "a"]
    batch = bf16.embed(three)
    single = np.stack([bf16.embed([t])[0] for t in three])
    assert float((batch * single).sum(axis=1).min()) >= 0.9999

"""bf16 linear layers with their weights pre-packed for oneDNN, and GELU fused into the matmul.

A plain ``nn.Linear`` in bf16 on the CPU hands oneDNN a row-major weight on every call, which
reorders it into the blocked layout AMX multiplies: for a short query that reorder costs more
than the product itself, and at 256 tokens the separate GELU pass over the feed-forward
activations took 18% of a forward. Packing once at load (the same oneDNN calls torch's own
inductor makes when it freezes a model) removes the reorders, and the feed-forward's GELU runs
as the matmul's post-op. Inference only: packed weights have no gradient.

Used only for bf16 inference on a CPU whose torch build has the mkldnn ops; anything else keeps
the modules as they are (``pack_for_inference`` returns 0).
"""

# No "from __future__ import annotations": TorchScript reads the class annotations below as
# types, not strings.

import logging
import warnings
from typing import Any, Optional, Union

# Imported only where bf16 inference is set up (``SentenceTransformerEmbedder``), never by
# ragloop's package imports.
import torch

log = logging.getLogger(__name__)

#: Rows oneDNN is told to expect when packing (a 16-text sub-batch of short inputs); a hint
#: for the blocking only, any row count works.
_ROWS_HINT = 16


def _mkldnn_ops() -> Any:
    ops = torch.ops.mkldnn
    try:
        return ops._reorder_linear_weight, ops._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


class PackedLinear(torch.nn.Module):
    """``linear`` (then ``activation``: "none" or "gelu") with a oneDNN-packed bf16 weight.

    Written for TorchScript (``packed_module`` scripts it), so a model holding these can be
    traced into one graph (``traced_forward``): the tracer cannot record the op's empty list of
    optional scalars, a scripted call carries its type.
    """

    packed: torch.Tensor
    bias: torch.Tensor  # empty when the layer has none (TorchScript wants one type)

    def __init__(self, linear: torch.nn.Linear, activation: str = "none") -> None:
        super().__init__()
        reorder, _ = _mkldnn_ops()
        weight = linear.weight.detach().to(torch.bfloat16)
        self.register_buffer("packed", reorder(weight, _ROWS_HINT))
        self.has_bias = linear.bias is not None
        bias = linear.bias.detach().to(torch.bfloat16) if linear.bias is not None else None
        self.register_buffer("bias", bias if bias is not None else torch.zeros(0))
        self.activation = activation
        # "none" as the GELU algorithm means the exact (erf) GELU, BERT's "gelu".
        self.algorithm = "none" if activation == "gelu" else ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``activation(x @ W.T + b)`` in bf16."""
        # Union[int, float, complex] is how TorchScript spells the schema's "Scalar".
        scalars: list[Optional[Union[int, float, complex]]] = []  # noqa: UP007 UP045
        bias: Optional[torch.Tensor] = self.bias if self.has_bias else None  # noqa: UP045
        return torch.ops.mkldnn._linear_pointwise(
            x, self.packed, bias, self.activation, scalars, self.algorithm
        )


def packed_module(linear: torch.nn.Linear, activation: str = "none") -> Any:
    """A scripted ``PackedLinear`` for ``linear``; the plain module where scripting fails.

    TorchScript is deprecated in favour of ``torch.compile``/``torch.export``, but it is the one
    way here to run a whole forward outside Python (see ``traced_forward``); a torch that drops
    it leaves the layer packed and run eagerly.
    """
    module = PackedLinear(linear, activation)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(module)
    except Exception as exc:  # the scripting compiler raises many kinds
        log.debug("PackedLinear not scripted (%s); running it eagerly", exc)
        return module


def _is_exact_gelu(fn: Any) -> bool:
    # transformers' "gelu" (GELUActivation around torch's erf GELU) or torch's own nn.GELU();
    # the tanh and "new" variants are different functions and are left unfused.
    if type(fn).__name__ == "GELUActivation":
        return getattr(fn, "act", None) is torch.nn.functional.gelu
    return isinstance(fn, torch.nn.GELU) and fn.approximate == "none"


def pack_for_inference(model: Any) -> int:
    """Replace every bf16 ``nn.Linear`` in ``model`` by a packed one; fuse BERT-style GELUs.

    fp32 layers are left alone (packing casts to bf16, which would change their numbers).

    A feed-forward block shaped like BERT's (``intermediate.dense`` followed by an exact-GELU
    ``intermediate_act_fn``) gets the GELU as the matmul's post-op and an identity after it.
    Returns how many layers were packed; 0 (nothing changed) where the ops are missing or the
    first packed layer does not reproduce the plain one.
    """
    if _mkldnn_ops() is None or not torch.backends.mkldnn.is_available():
        return 0
    if not _reproduces():
        log.warning("oneDNN packed bf16 linear disagrees with torch here; not packing")
        return 0
    count = 0
    for module in list(model.modules()):
        block: Any = getattr(module, "intermediate", None)
        dense = getattr(block, "dense", None)
        act = getattr(block, "intermediate_act_fn", None)
        if (
            isinstance(dense, torch.nn.Linear)
            and dense.weight.dtype == torch.bfloat16
            and _is_exact_gelu(act)
        ):
            block.dense = packed_module(dense, "gelu")
            block.intermediate_act_fn = torch.nn.Identity()
            count += 1
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear) and child.weight.dtype == torch.bfloat16:
                setattr(parent, name, packed_module(child))
                count += 1
    return count


def _reproduces() -> bool:
    # One small product against torch's own bf16 linear (and GELU): a build whose ops exist but
    # misbehave must not silently change every vector.
    gen = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(64, 48).to(torch.bfloat16)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(48, 64, generator=gen) / 8)
        lin.bias.copy_(torch.randn(48, generator=gen) / 8)
    x = torch.randn(3, 5, 64, generator=gen).to(torch.bfloat16)
    try:
        with torch.inference_mode():
            want = torch.nn.functional.gelu(lin(x)).float()
            got = packed_module(lin, "gelu")(x).float()
    except (RuntimeError, torch.jit.Error):
        return False
    return bool(torch.allclose(got, want, atol=0.05, rtol=0.05))

"""The whole sentence-transformers forward as one TorchScript graph, run outside Python.

Why: an eager forward of MiniLM is about 300 Python-level calls (modules, then each op), and
each takes the GIL back after its kernel. In the server the GIL is also wanted by the event
loop and by the request threads (validation, the catalog join), so every one of those calls can
queue behind them. Measured on 2 cores, one query's forward took 6.8 ms alone and 12-39 ms with
one to eight busy Python threads beside it; inside ``ragloop serve`` at 8 clients it took a
median 30 ms wall for 9 ms of its own CPU. A traced graph runs in TorchScript's interpreter in
C++, so the forward needs the GIL once: 2.5-2.8 ms alone for one query, 6-13 ms beside the same
busy threads, and about 14% more throughput at 16 x 256 tokens.

The trace records the ops one example input took. That is safe for this pipeline because its
branches depend on the model, not on the data (the ONNX export traces the same modules), and
it is checked: the graph must reproduce the eager modules on inputs of other shapes, with and
without padding, or it is not used. Anything that fails (tracing, the check, a torch without
TorchScript) leaves the eager forward in place.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

log = logging.getLogger(__name__)

#: (rows, width, padded) inputs the graph must reproduce eager on; the trace uses the first.
_CHECK_SHAPES = ((2, 12, True), (1, 5, False), (3, 40, True), (4, 8, False))
#: How close graph and eager outputs must be (the same kernels: in practice identical).
_CHECK_ATOL = 1e-4


def pipeline(model: Any, names: Sequence[str]) -> Any:
    """``model`` (a SentenceTransformer) as one module: tensors in ``names`` order -> vectors.

    The eager forward every torch embedder runs, and what ``trace_pipeline`` traces.
    """
    import torch

    class Pipeline(torch.nn.Module):
        """Tensors in ``names`` order -> sentence embeddings: the transformer (bf16 or fp32),
        its token vectors cast to fp32, then the remaining modules (pooling, normalize)."""

        def __init__(self, model: Any, names: Sequence[str]) -> None:
            super().__init__()
            self.model = model
            self.names = list(names)

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            features = self.model[0](dict(zip(self.names, tensors, strict=True)))
            features["token_embeddings"] = features["token_embeddings"].float()
            for module in list(self.model)[1:]:
                features = module(features)
            return features["sentence_embedding"].float()

    return Pipeline(model, names).eval()


def _inputs(names: Sequence[str], rows: int, width: int, padded: bool, pad_id: int) -> list[Any]:
    import torch

    gen = torch.Generator().manual_seed(rows * 1000 + width)
    ids = torch.randint(1000, 2000, (rows, width), generator=gen)
    mask = torch.ones((rows, width), dtype=torch.long)
    if padded:  # the first row is half padding, as in a length-sorted sub-batch
        mask[0, width // 2 :] = 0
        ids[0, width // 2 :] = pad_id
    tensors = {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": torch.zeros((rows, width), dtype=torch.long),
    }
    return [tensors[n] for n in names]


@contextlib.contextmanager
def _quiet_model_libraries() -> Iterator[None]:
    # Making the graph reads every attribute of every module, deprecated aliases included,
    # and sentence-transformers and transformers log a warning for each of those reads.
    loggers = [logging.getLogger(n) for n in ("sentence_transformers", "transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def trace_pipeline(eager: Any, names: Sequence[str], pad_id: int) -> Any | None:
    """``eager`` (a ``pipeline``) traced into one graph taking the same ``names`` tensors.

    Returns the graph, called as ``graph(*tensors)`` under ``torch.inference_mode()``, or None
    (with the reason logged) when tracing fails or the graph does not reproduce the eager
    modules on the check shapes. The graph shares the model's weights.
    """
    import torch

    try:
        with torch.inference_mode(), warnings.catch_warnings(), _quiet_model_libraries():
            # The tracer warns about every Python value it records as a constant, and
            # TorchScript itself is deprecated; both are expected here (see the docstring).
            warnings.simplefilter("ignore")
            rows, width, padded = _CHECK_SHAPES[0]
            graph = torch.jit.trace(
                eager, tuple(_inputs(names, rows, width, padded, pad_id)), check_trace=False
            )
            for rows, width, padded in _CHECK_SHAPES:
                args = _inputs(names, rows, width, padded, pad_id)
                want, got = eager(*args), graph(*args)
                if got.shape != want.shape or not torch.allclose(got, want, atol=_CHECK_ATOL):
                    log.warning(
                        "traced forward differs from eager at %dx%d; running eagerly", rows, width
                    )
                    return None
    except Exception as exc:  # tracing can raise nearly anything a model's code does
        log.warning("cannot trace the forward (%s: %s); running eagerly", type(exc).__name__, exc)
        return None
    return graph

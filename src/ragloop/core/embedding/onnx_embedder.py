"""ONNX Runtime embedder: a sentence-transformers model exported locally to ONNX (fp32 or int8).

The export goes through ``torch.onnx.export`` (TorchScript tracer) on the model directory
itself, so nothing is downloaded; int8 is ONNX Runtime's dynamic quantization with per-channel
QInt8 weights (per-tensor loses too much: cosine ~0.93 to fp32 on MiniLM), applied to the
linear layers only, with the feed-forward down-projections of the first half of the layers
kept in fp32 (see ``_quantize_int8``). Exports are cached
per model fingerprint (a hash of the model files and the exporting library versions) and written
atomically: a file is written under a temporary name and renamed, so a crash never leaves a
half-written model under the name that is loaded. Tokenization uses the tokenizer exactly as
sentence-transformers configured it, saved beside the export and run through ``tokenizers``,
with the maximum length and special tokens the torch embedder reports, so chunking is the same
whichever backend runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import numpy as np

from ragloop.core.embedding.atomic import atomic_write_text, replacing
from ragloop.core.embedding.base import Embedder, EmbedderOptions, sorted_batches
from ragloop.core.embedding.hardware import usable_cores
from ragloop.core.embedding.torch_embedder import SentenceTransformerEmbedder
from ragloop.core.errors import ModelUnavailableError

log = logging.getLogger(__name__)

#: Bump when the exported graph or its metadata changes, so old caches are not reused
#: (3: int8 leaves the embeddings and the early feed-forward down-projections in fp32).
EXPORT_FORMAT = 3
#: Inputs a BERT-like model may take, in the order the exported graph declares them.
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: Texts per ONNX Runtime call inside one ``embed``; inputs are sorted by length first, so
#: small sub-batches pad little (on 2 cores, 4 was faster than 16 or 64 for fp32 and int8).
SUB_BATCH = 4
#: An fp32 export must reproduce torch this closely on the check texts, or it is discarded.
EXPORT_CHECK_COSINE = 0.9999
_CHECK_TEXTS = (
    "a",
    "What causes scurvy?",
    "Vitamin C deficiency was common among sailors on long ocean voyages without citrus.",
    "Coral reefs grow slowly; warming water bleaches them. " * 12,
)


#: Files that make up a model (weights, configs, tokenizer) and so enter its fingerprint.
_MODEL_SUFFIXES = {".safetensors", ".bin", ".json", ".txt", ".model"}
#: Files the learning loop writes into a version directory, some after the model is loaded.
_NOT_MODEL = {"manifest.json", "training.json", "gate.json"}


def model_fingerprint(model_dir: Path) -> str:
    """A short hash of a model directory's model files plus the exporter versions.

    Any change to the weights, tokenizer or config, or to torch / onnxruntime, gives a new
    fingerprint and therefore a fresh export. The ``onnx`` subfolder (where a version directory
    keeps its own export) and the learning loop's reports (written into a version directory
    after the worker has loaded the candidate) are not part of it, so the worker and the server
    find the same export and the same backend decision.
    """
    h = hashlib.sha256(f"format={EXPORT_FORMAT}".encode())
    for dist in ("torch", "onnxruntime", "transformers", "sentence-transformers"):
        h.update(f"{dist}={dist_version(dist)}".encode())
    for file in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        rel = file.relative_to(model_dir)
        if (
            rel.parts[0] == "onnx"
            or rel.name.startswith(".")
            or rel.suffix not in _MODEL_SUFFIXES
            or rel.name in _NOT_MODEL
        ):
            continue
        h.update(str(rel).encode())
        with file.open("rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()[:16]


def export_dir_for(model_dir: Path, data_dir: Path | None) -> Path:
    """Where the exports of ``model_dir`` live.

    A model directory inside the data dir (a fine-tuned version) keeps its export beside its
    weights, so removing the version removes the export; any other model (the bundled one lives
    in read-only site-packages) exports into ``<data_dir>/onnx/``, or into the user cache when
    no data dir is given.
    """
    fp = model_fingerprint(model_dir)
    if data_dir is not None:
        if model_dir.resolve().is_relative_to(data_dir.resolve()):
            return model_dir / "onnx" / fp
        return data_dir / "onnx" / fp
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ragloop" / "onnx" / fp


def _export_fp32(model_dir: Path, out: Path) -> None:
    """Trace the sentence-transformers model (transformer, pooling, normalize) to ``out``."""
    import torch

    ref = SentenceTransformerEmbedder(model_dir, EmbedderOptions(precision="fp32"))
    st = ref.model
    names = [n for n in _INPUTS if n in st.tokenizer.model_input_names]

    class _Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            out = self.st(dict(zip(names, tensors, strict=True)))
            return out["sentence_embedding"]

    enc = st.tokenizer(["an example input", "a"], padding=True, return_tensors="pt")
    args = tuple(enc[n] for n in names)
    with replacing(out) as tmp:
        # The TorchScript exporter: the dynamo one needs onnxscript and gains nothing here.
        with torch.no_grad():
            torch.onnx.export(
                _Graph().eval(),
                args,
                str(tmp),
                dynamo=False,
                input_names=names,
                output_names=["embedding"],
                dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names}
                | {"embedding": {0: "batch"}},
                opset_version=17,
            )
        meta = {
            "inputs": names,
            "dimension": ref.dimension,
            "max_seq_length": ref.max_seq_length,
            "special_tokens": ref.special_tokens,
            "pad_token_id": int(st.tokenizer.pad_token_id or 0),
        }
        # The tokenizer exactly as sentence-transformers set it up (it may add a lowercasing
        # normalizer that the tokenizer.json on disk lacks), so tokens match the torch path.
        backend = getattr(st.tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ModelUnavailableError(f"{model_dir} has no fast tokenizer to export")
        atomic_write_text(out.parent / "tokenizer.json", backend.to_str())
        atomic_write_text(out.parent / "meta.json", json.dumps(meta, indent=2))
        # A trace that does not reproduce torch (a shape baked into the graph) is never cached.
        got = OnnxEmbedder(model_dir, tmp, model_id=str(model_dir)).embed(list(_CHECK_TEXTS))
        want = ref.embed(list(_CHECK_TEXTS))
        cos = float((got * want).sum(axis=1).min())
        if cos < EXPORT_CHECK_COSINE:
            raise ModelUnavailableError(
                f"the ONNX export of {model_dir} does not match torch (cosine {cos:.5f})"
            )


#: A BERT-style feed-forward down-projection (intermediate -> hidden) as the tracer names it.
_FFN_OUT = re.compile(r"/layer\.(\d+)/output/dense/MatMul$")


def int8_fp32_nodes(names: Sequence[str]) -> list[str]:
    """The MatMul nodes that int8 quantization leaves in fp32: FFN outputs of the first half.

    The input of a feed-forward down-projection is the GELU output, whose outliers a per-tensor
    dynamic activation scale flattens; the error made in early layers then grows through the
    rest. On MiniLM (probe set, 300 SciFact queries, 256 abstracts) quantizing everything gave a
    minimum cosine to fp32 of 0.987; these three layers in fp32 gave 0.9925 at about the same
    speed, and all six 0.9935 at a quarter less speed. A graph named otherwise gets no
    exceptions, and the automatic choice's cosine check still decides whether int8 is used.
    """
    layers = {int(m.group(1)): n for n in names if (m := _FFN_OUT.search(n))}
    if not layers:
        return []
    first_half = (max(layers) + 2) // 2  # layers 0..2 of 6, 0..3 of 7
    return [n for layer, n in sorted(layers.items()) if layer < first_half]


def _quantize_int8(fp32: Path, out: Path) -> None:
    """Dynamic int8 quantization of the MatMuls (per-channel QInt8 weights), written atomically.

    Only MatMul is quantized: ONNX Runtime's default also quantizes the embedding tables
    (Gather), per tensor, which cost accuracy and saved no time.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32), load_external_data=False).graph
    keep = int8_fp32_nodes([n.name for n in graph.node if n.op_type == "MatMul"])
    with replacing(out) as tmp:
        quantize_dynamic(
            str(fp32),
            str(tmp),
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=keep,
        )


def ensure_export(model_dir: Path, export_dir: Path, precision: str) -> Path:
    """The ONNX file for ``precision`` ("fp32" or "int8"), exporting it first if needed.

    Only the final file names are ever loaded, so leftover temporary files from a crashed
    export are ignored (and overwritten by the next export). Raises ``ModelUnavailableError``
    if the model cannot be exported.
    """
    if precision not in ("fp32", "int8"):
        raise ModelUnavailableError(f"the ONNX backend runs fp32 or int8, not {precision!r}")
    fp32 = export_dir / "model.fp32.onnx"
    try:
        export_dir.mkdir(parents=True, exist_ok=True)
        if not all((export_dir / f).exists() for f in (fp32.name, "meta.json", "tokenizer.json")):
            log.info("exporting %s to ONNX in %s", model_dir, export_dir)
            _export_fp32(model_dir, fp32)
        if precision == "fp32":
            return fp32
        int8 = export_dir / "model.int8.onnx"
        if not int8.exists():
            log.info("quantizing %s to int8", fp32)
            _quantize_int8(fp32, int8)
        return int8
    except ModelUnavailableError:
        raise
    except Exception as exc:  # the exporter raises anything from RuntimeError to protobuf errors
        raise ModelUnavailableError(
            f"cannot export {model_dir} to ONNX ({type(exc).__name__}: {exc}); "
            "set RAGLOOP_BACKEND=torch to use the model without ONNX"
        ) from exc


class OnnxEmbedder(Embedder):
    """A sentence-transformers model run by ONNX Runtime on the CPU; same contract as torch's.

    Thread-safe: ``tokenizers`` encodes and ``InferenceSession.run`` may be called from many
    threads at once, and nothing here mutates after construction.
    """

    source_dir: Path

    def __init__(
        self, model_dir: Path, onnx_path: Path, model_id: str, precision: str = "fp32"
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        meta: dict[str, Any] = json.loads((onnx_path.parent / "meta.json").read_text())
        tok_path = onnx_path.parent / "tokenizer.json"
        self.source_dir = model_dir
        self.onnx_path = onnx_path
        self.model_id = model_id
        self.precision = precision
        self.dimension = int(meta["dimension"])
        self.max_seq_length = int(meta["max_seq_length"])
        self.special_tokens = int(meta["special_tokens"])
        self._inputs: list[str] = list(meta["inputs"])
        self._pad_id = int(meta["pad_token_id"])
        # Two tokenizers: counting never truncates; encoding truncates as the torch model does.
        self._counter = Tokenizer.from_file(str(tok_path))
        self._counter.no_truncation()
        self._counter.no_padding()
        self._encoder = Tokenizer.from_file(str(tok_path))
        self._encoder.enable_truncation(self.max_seq_length)
        self._encoder.no_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = usable_cores()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(onnx_path), opts, providers=["CPUExecutionProvider"]
        )

    @functools.cached_property
    def tokenizer(self) -> Any:
        """The model's tokenizer as transformers loads it, like ``SentenceTransformerEmbedder``'s.

        Loaded on first use only: ragloop itself counts and encodes through ``tokenizers``; this
        is for callers that inspect token ids the way they would with the torch embedder.
        """
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.source_dir), local_files_only=True)

    def embed(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        """Encode in length-sorted sub-batches; rows come back in input order, unit length."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encs = self._encoder.encode_batch(list(texts))
        for rows in sorted_batches([len(e.ids) for e in encs], SUB_BATCH):
            width = max(len(encs[i].ids) for i in rows)
            feed = {n: np.zeros((len(rows), width), dtype=np.int64) for n in self._inputs}
            feed["input_ids"][:] = self._pad_id
            for r, i in enumerate(rows):
                e = encs[i]
                n = len(e.ids)
                feed["input_ids"][r, :n] = e.ids
                feed["attention_mask"][r, :n] = 1
                if "token_type_ids" in feed:
                    feed["token_type_ids"][r, :n] = e.type_ids
            out[rows] = self.session.run(None, feed)[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts without special tokens, from the model's own tokenizer."""
        if not texts:
            return []
        encs = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encs]


def load_onnx(
    model_dir: Path, precision: str, data_dir: Path | None, model_id: str | None = None
) -> OnnxEmbedder:
    """Export (once) and load ``model_dir`` under ONNX Runtime at ``precision``.

    Raises ``ModelUnavailableError`` with the reason when the export or the load fails.
    """
    export_dir = export_dir_for(model_dir, data_dir)
    path = ensure_export(model_dir, export_dir, precision)
    try:
        return OnnxEmbedder(model_dir, path, model_id or str(model_dir), precision)
    except ModelUnavailableError:
        raise
    except Exception as exc:
        raise ModelUnavailableError(
            f"cannot load the ONNX export {path} ({type(exc).__name__}: {exc}); "
            "set RAGLOOP_BACKEND=torch to use the model without ONNX"
        ) from exc

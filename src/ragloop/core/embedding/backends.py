"""Which inference path runs a local model: torch (fp32 or bf16 weights) or ONNX (fp32, int8).

``RAGLOOP_BACKEND`` and ``RAGLOOP_PRECISION`` pick one explicitly. With ``auto`` for both (the
default) the first load of a model on a CPU checks the fast paths in a fixed order (bf16
weights then ONNX fp32 where the CPU has native bf16; ONNX int8 then fp32 elsewhere) on a probe
set shipped here: the first whose minimum cosine to torch fp32 over the probes keeps its
threshold (0.999 for bf16 and ONNX fp32, 0.99 for int8) wins, else torch fp32. The decision
is cached next to the ONNX export, keyed by the CPU's flags, so later starts load the winner
directly. Every model directory goes through ``load_model_dir``: the base model and fine-tuned
versions alike.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragloop.core.embedding import hardware
from ragloop.core.embedding.atomic import atomic_write_text
from ragloop.core.embedding.base import Embedder, EmbedderOptions
from ragloop.core.embedding.onnx_embedder import export_dir_for, load_onnx
from ragloop.core.embedding.torch_embedder import SentenceTransformerEmbedder
from ragloop.core.errors import ConfigError, ModelUnavailableError

log = logging.getLogger(__name__)

#: Minimum cosine to torch fp32, over every probe text, that a fast path must keep.
THRESHOLDS = {"torch-fp32": 0.9999, "torch-bf16": 0.999, "onnx-fp32": 0.999, "onnx-int8": 0.99}
#: Bump to make every cached decision stale (new probes, new candidates, a changed path;
#: 2: torch bf16 runs bf16 weights instead of autocast).
DECISION_FORMAT = 2

_SENTENCES = (
    "Vitamin C deficiency causes scurvy, which was common among sailors on long voyages.",
    "The mitochondrion produces most of the cell's supply of adenosine triphosphate.",
    "Coral reefs are built by colonies of tiny animals that secrete calcium carbonate.",
    "In 1969 the Apollo 11 mission landed the first humans on the Moon.",
    "Python's garbage collector frees objects whose reference count drops to zero.",
    "The central bank raised interest rates by 25 basis points to curb inflation.",
    "Patients receiving the placebo showed no significant change in blood pressure.",
    "Chroma stores embeddings in collections and searches them with an HNSW index.",
    "Sourdough bread rises because wild yeast and lactobacilli ferment the flour.",
    "A volcano erupts when pressure from gases and molten rock becomes too great.",
    "The contract terminates automatically if either party fails to pay within 30 days.",
    "Mutations in the BRCA1 gene increase the lifetime risk of breast cancer.",
    "Use `git rebase -i HEAD~3` to squash the last three commits into one.",
    "Les baleines bleues sont les plus grands animaux ayant jamais vécu sur Terre.",
    "Revenue grew 12% year over year, driven by subscriptions in Europe (EUR 4.2m).",
    "Train services between the two cities were suspended after the storm damaged rails.",
    "The enzyme's activity peaked at 37 °C and pH 7.4, then declined sharply.",
    "Transformers replace recurrence with self-attention over all positions at once.",
    "Deforestation in the Amazon basin reduces rainfall far beyond the cleared areas.",
    "Error 503: the upstream service is unavailable; retry after the given delay.",
    "Children who slept fewer than eight hours scored lower on attention tests.",
    "The treaty was signed in Vienna and ratified by forty-two states within a year.",
    "Insulin resistance precedes type 2 diabetes by years in most patients.",
    "Mean pooling averages the token vectors, ignoring padding through the attention mask.",
)
_QUERIES = (
    "what causes scurvy",
    "How do mitochondria make energy?",
    "coral reef formation",
    "first moon landing year",
    "python garbage collection reference counting",
    "why did the central bank raise rates",
    "Does placebo lower blood pressure?",
    "hnsw index",
    "sourdough yeast",
    "volcano eruption cause",
    "contract termination non-payment",
    "BRCA1 breast cancer risk",
    "squash commits git",
    "plus grand animal",
    "revenue growth Europe",
    "storm train suspended",
    "enzyme optimal temperature",
    "self-attention vs recurrence",
    "amazon deforestation rainfall",
    "HTTP 503 meaning",
    "sleep and attention in children",
    "Vienna treaty ratification",
    "insulin resistance diabetes",
    "mean pooling padding",
)


def probe_texts() -> list[str]:
    """64 fixed texts: 24 short queries and 40 passages of 1 to 16 sentences (~20-350 tokens).

    Short queries are where quantization errs most; long passages are what ingest embeds, and
    they dominate the timing, as they do in real use.
    """
    texts = list(_QUERIES)
    n = len(_SENTENCES)
    for i in range(40):
        length = 1 + (i * 5) % 16
        texts.append(" ".join(_SENTENCES[(i * 7 + j) % n] for j in range(length)))
    return texts


@dataclass
class Trial:
    """One candidate path measured on the probes."""

    path: str
    texts_per_s: float
    cosine_min: float
    cosine_mean: float

    @property
    def passes(self) -> bool:
        """Whether the path keeps its cosine threshold to torch fp32."""
        return self.cosine_min >= THRESHOLDS[self.path]


def _time(embedder: Embedder, texts: list[str], batch: int = 32) -> tuple[np.ndarray, float]:
    # One timed pass, after a short warm-up (first calls allocate and pick kernels): a second
    # pass would double the start-up cost, and a close call between two passing paths costs
    # little either way.
    embedder.embed(texts[-8:])
    t0 = time.perf_counter()
    vecs = np.concatenate(
        [embedder.embed(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    )
    return vecs, len(texts) / (time.perf_counter() - t0)


def _torch(
    path: Path, options: EmbedderOptions, model_id: str | None, bf16: bool
) -> SentenceTransformerEmbedder:
    opts = EmbedderOptions(options.device, "bf16" if bf16 else "fp32", "torch", options.data_dir)
    return SentenceTransformerEmbedder(path, opts, model_id=model_id)


def _decide(path: Path, options: EmbedderOptions, model_id: str | None) -> Embedder:
    name = model_id or str(path)
    try:
        export_dir: Path | None = export_dir_for(path, options.data_dir)
    except Exception as exc:  # an unreadable model dir: torch will report it properly
        log.warning("no ONNX backend for %s (%s); using torch", name, exc)
        export_dir = None
    decision_file = export_dir / f"auto-{hardware.cpu_key()}.json" if export_dir else None
    if decision_file is not None and decision_file.is_file():
        try:
            saved = json.loads(decision_file.read_text())
            if saved.get("format") == DECISION_FORMAT:
                choice = str(saved["choice"])
                log.info("embedder %s: %s (decided earlier, %s)", name, choice, decision_file)
                if choice.startswith("onnx-"):
                    return load_onnx(path, choice.removeprefix("onnx-"), options.data_dir, model_id)
                return _torch(path, options, model_id, bf16=choice == "torch-bf16")
        except (ModelUnavailableError, ValueError, KeyError) as exc:
            log.warning("cached backend decision for %s unusable (%s); measuring again", name, exc)

    texts = probe_texts()
    ref = _torch(path, options, model_id, bf16=False)
    want, speed = _time(ref, texts)
    trials = [Trial("torch-fp32", speed, 1.0, 1.0)]
    embedders: dict[str, Embedder] = {"torch-fp32": ref}

    def measure(label: str, emb: Embedder) -> None:
        got, rate = _time(emb, texts)
        cos = (got * want).sum(axis=1)
        trials.append(Trial(label, rate, float(cos.min()), float(cos.mean())))
        embedders[label] = emb

    # Candidates in a fixed order of speed on their CPUs, first passing one wins: timing them
    # against each other at start-up picked differently run to run on a busy machine. Where
    # the CPU multiplies bf16 natively (AMX, AVX512-BF16), torch with bf16 weights is
    # near-lossless and was the fastest path at 256 tokens (docs/benchmarks.md), about twice
    # int8's speed there. Elsewhere int8 and fp32 ONNX Runtime beat torch fp32.
    native_bf16 = hardware.cpu_has_native_bf16()
    order = ("torch-bf16", "onnx-fp32") if native_bf16 else ("onnx-int8", "onnx-fp32")
    for label in order:
        if label == "torch-bf16":
            measure(label, ref.bf16_copy())
        elif export_dir is not None:
            try:
                measure(
                    label, load_onnx(path, label.removeprefix("onnx-"), options.data_dir, model_id)
                )
            except ModelUnavailableError as exc:
                log.warning("ONNX unavailable for %s, not a candidate: %s", name, exc)
                continue
        if trials[-1].path == label and trials[-1].passes:
            break
    passing = [t for t in trials[1:] if t.passes] or trials[:1]
    best = passing[0]
    summary = ", ".join(
        f"{t.path} {t.texts_per_s:.1f}/s cos_min {t.cosine_min:.4f}"
        + ("" if t.passes else " (fails)")
        for t in trials
    )
    log.info("embedder %s: chose %s on the probe set [%s]", name, best.path, summary)
    if decision_file is not None:
        record = {
            "format": DECISION_FORMAT,
            "choice": best.path,
            "model": name,
            "trials": [t.__dict__ | {"passes": t.passes} for t in trials],
            "thresholds": THRESHOLDS,
            "decided_at": time.time(),
        }
        decision_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(decision_file, json.dumps(record, indent=2))
    return embedders[best.path]


def load_model_dir(path: Path, options: EmbedderOptions, model_id: str | None = None) -> Embedder:
    """Load a sentence-transformers directory on the backend and precision ``options`` name.

    ``torch`` (or any non-CPU device under ``auto``) is the sentence-transformers embedder as
    before; ``onnx`` exports and runs ONNX Runtime, raising ``ModelUnavailableError`` if that
    fails; ``auto`` with precision ``auto`` checks paths in a fixed speed order and caches the
    first that keeps its quality threshold, falling back to torch with a warning if ONNX cannot
    be used. ``auto`` with an explicit precision means torch for fp32 and bf16 (fp32 stays the
    reference that ``ragloop eval`` measures) and ONNX for int8.
    """
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        # Checked before anything hashes or exports the directory.
        raise ModelUnavailableError(f"{path} does not hold a sentence-transformers model")
    backend, precision = options.backend, options.precision
    if backend not in ("auto", "torch", "onnx"):
        raise ConfigError(f"unknown embedder backend {backend!r}: use auto, torch or onnx")
    if backend == "torch" or (backend == "auto" and precision in ("fp32", "bf16")):
        if precision == "int8":
            raise ConfigError("precision int8 runs only on the ONNX backend, not torch")
        return SentenceTransformerEmbedder(path, options, model_id=model_id)
    if options.device != "cpu":
        if backend == "onnx" or precision == "int8":
            raise ConfigError(f"the ONNX backend runs on the CPU, not on {options.device!r}")
        return SentenceTransformerEmbedder(path, options, model_id=model_id)
    if backend == "onnx" or precision == "int8":
        if precision == "bf16":
            raise ConfigError("precision bf16 is a torch path; the ONNX backend runs fp32 or int8")
        if precision == "auto":
            # Explicit ONNX with automatic precision: int8 only where it keeps its threshold.
            emb = _decide_onnx(path, options, model_id)
        else:
            emb = load_onnx(path, precision, options.data_dir, model_id)
        return emb
    return _decide(path, options, model_id)


def _decide_onnx(path: Path, options: EmbedderOptions, model_id: str | None) -> Embedder:
    fp32 = load_onnx(path, "fp32", options.data_dir, model_id)
    try:
        int8 = load_onnx(path, "int8", options.data_dir, model_id)
    except ModelUnavailableError as exc:
        log.warning("int8 unavailable for %s (%s); using ONNX fp32", fp32.model_id, exc)
        return fp32
    texts = probe_texts()
    cos = (fp32.embed(texts) * int8.embed(texts)).sum(axis=1)
    ok = float(cos.min()) >= THRESHOLDS["onnx-int8"]
    log.info(
        "embedder %s: ONNX %s (int8 cos_min %.4f)",
        fp32.model_id,
        "int8" if ok else "fp32",
        cos.min(),
    )
    return int8 if ok else fp32

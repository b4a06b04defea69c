"""Per-version calibration of the miss flags, from the corpus itself.

A fixed cosine threshold means different things on different corpora and models: on one it
flags correct answers, on another it misses most failures. So each model version gets its own
cuts, measured on its own index with questions whose answers are known:

1. Sample up to ``RAGLOOP_MISS_CALIBRATION_SAMPLE`` chunks (the first ones in id order: ids
   are content hashes, so this is a fixed pseudo-random sample) and make one offline question
   per chunk: its section heading or (first chunk) its document title when that has two words
   or more, else a sentence of the chunk cropped to 30 words (the offline method of
   ``finetune/synthetic.py``; re-stated here because core imports nothing outside itself).
2. **present**: each question's best dense cosine over the whole index (its answer is there).
3. **absent**: the same question's best cosine once its own document is left out, which is
   what a question whose answer the corpus does not hold looks like on this index and model.

The cuts: ``low_score`` is the 10th percentile of *present* (nine in ten questions the corpus
does answer score above it, whatever the model's cosine scale); ``weak_top`` is the median of
*absent* (used with top-1 disagreement, see ``core.miss_flags``). Both are stored in the
version's ``info["miss"]``, so a hot swap switches thresholds with the model, and a promotion
recalibrates (``finetune/promote.py``).
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ragloop.core.errors import RagloopError
from ragloop.core.miss_flags import MissThresholds
from ragloop.core.records import TITLE_SEPARATOR, ChunkRecord, section_heading
from ragloop.core.runtime import ActiveIndex, Runtime
from ragloop.core.storage.catalog import Catalog
from ragloop.core.storage.vectors import VectorStore

METHOD = "offline-question/heldout-document/v1"
#: Below this many questions the quantiles are noise: the settings' fallback applies.
MIN_QUESTIONS = 20
LOW_SCORE_QUANTILE = 0.10
WEAK_TOP_QUANTILE = 0.50
#: A document with more chunks than this is not left out (too costly to read past it).
MAX_OWN_CHUNKS = 99
#: How often (seconds) a serving process re-counts chunks to notice a grown or shrunk corpus.
RECOUNT_INTERVAL = 30.0
_SENTENCE = re.compile(r"(?<=[.!?])\s+")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MissCalibration:
    """The cuts for one model version and the distributions they came from."""

    low_score: float
    weak_top: float
    n_questions: int
    #: Chunks in the corpus when calibrated (a corpus that doubles or halves recalibrates).
    n_chunks: int
    present: dict[str, float] = field(default_factory=dict)
    absent: dict[str, float] = field(default_factory=dict)
    method: str = METHOD
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``info["miss"]`` stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MissCalibration:
        """Back from ``info["miss"]``; unknown keys (a newer writer's) are ignored."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def stale(self, n_chunks: int) -> bool:
        """Whether the corpus has changed enough (x2 either way) to measure again."""
        return n_chunks > 2 * self.n_chunks or 2 * n_chunks < self.n_chunks


def question_for(chunk: ChunkRecord) -> str | None:
    """One offline question a chunk answers, deterministic per chunk (None: too little text)."""
    heading = section_heading(chunk.title).rstrip(" …:").strip()
    if len(heading.split()) >= 2:
        return heading
    title = chunk.title.partition(TITLE_SEPARATOR)[0].strip()
    if chunk.seq == 0 and len(title.split()) >= 2:
        return title
    sentences = [s.strip() for s in _SENTENCE.split(chunk.text) if len(s.split()) >= 6]
    if not sentences:
        return None
    rng = random.Random(chunk.id)
    words = rng.choice(sentences).split()
    if len(words) > 30:  # a long sentence is cropped to a span, as in cropping pre-training
        start = rng.randrange(0, len(words) - 30)
        words = words[start : start + 30]
    return " ".join(words)


def summary(values: Sequence[float]) -> dict[str, float]:
    """A few quantiles of a score distribution, for the record and the docs."""
    q = np.quantile(np.asarray(values, dtype=np.float64), [0.1, 0.25, 0.5, 0.75, 0.9])
    return {f"p{p}": round(float(v), 4) for p, v in zip((10, 25, 50, 75, 90), q, strict=True)}


def cuts(present: Sequence[float], absent: Sequence[float]) -> tuple[float, float]:
    """(low_score, weak_top) from the two distributions; see the module docstring."""
    low = float(np.quantile(np.asarray(present, dtype=np.float64), LOW_SCORE_QUANTILE))
    weak = float(np.quantile(np.asarray(absent, dtype=np.float64), WEAK_TOP_QUANTILE))
    return round(low, 4), round(weak, 4)


def calibrate(
    index: ActiveIndex, store: VectorStore, catalog: Catalog, sample: int = 200
) -> MissCalibration | None:
    """Measure a version's cuts on its own collection; None when the corpus is too small.

    Cost: one batch of ``sample`` query embeddings and as many vector searches (a second or
    two on CPU for the default model), whatever the corpus size.
    """
    chunks = next(catalog.iter_chunks(sample), [])
    asked = [(c, q) for c in chunks if (q := question_for(c))]
    if len(asked) < MIN_QUESTIONS:
        return None
    vectors = index.embedder.embed([q for _, q in asked], is_query=True)
    own_chunks: dict[str, set[str]] = {}
    present: list[float] = []
    absent: list[float] = []
    for (chunk, _), vector in zip(asked, vectors, strict=True):
        own = own_chunks.get(chunk.document_id)
        if own is None:
            own = {c.id for c in catalog.chunks_of(chunk.document_id)}
            own_chunks[chunk.document_id] = own
        found = store.query(index.collection, vector, min(len(own), MAX_OWN_CHUNKS) + 1, None)
        if not found:
            continue
        present.append(found[0][1])
        others = [score for cid, score in found if cid not in own]
        if others:  # else the document fills the whole window: no absent sample
            absent.append(others[0])
    if len(present) < MIN_QUESTIONS or len(absent) < MIN_QUESTIONS:
        return None
    low, weak = cuts(present, absent)
    return MissCalibration(
        low_score=low,
        weak_top=weak,
        n_questions=len(present),
        n_chunks=catalog.counts()["chunks"],
        present=summary(present),
        absent=summary(absent),
        created_at=time.time(),
    )


def recalibrate(runtime: Runtime, index: ActiveIndex) -> MissCalibration | None:
    """Calibrate ``index``'s version now and store it in its ``info["miss"]`` (promotion,
    a changed corpus). None, and nothing stored, when the corpus is too small."""
    cal = calibrate(index, runtime.store, runtime.catalog, runtime.settings.miss_calibration_sample)
    if cal is not None:
        runtime.catalog.set_info(index.version.version, "miss", cal.to_dict())
        log.info(
            "miss calibration of %s: low_score < %.4f, weak_top < %.4f (%d questions)",
            index.version.version,
            cal.low_score,
            cal.weak_top,
            cal.n_questions,
        )
    return cal


class Calibrations:
    """The miss thresholds of each model version, for one serving process.

    A version's stored calibration is used as it is; a version without one (or whose corpus
    has since doubled or halved) is calibrated on its first question, once per process, and
    stored for every other process. An explicit ``RAGLOOP_MISS_SCORE_THRESHOLD`` replaces the
    low_score cut of every version; until a corpus is big enough to calibrate, the setting's
    value applies and weak_top is off.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._lock = threading.Lock()
        #: Calibrations made here, by version: the active index's copy of ``info`` is only
        #: refreshed when the process next re-reads the active pointer.
        self._made: dict[str, MissCalibration] = {}
        #: version -> (monotonic time of the last attempt or count, chunk count then).
        self._checked: dict[str, tuple[float, int]] = {}

    def thresholds(self, index: ActiveIndex) -> MissThresholds:
        """The cuts the miss flags of a question answered by ``index`` use."""
        s = self.rt.settings
        cal = self.calibration(index)
        override = s.miss_threshold_override
        if override is not None:
            low, source = override, "setting"
        elif cal is not None:
            low, source = cal.low_score, "calibrated"
        else:
            low, source = s.miss_score_threshold, "fallback"
        return MissThresholds(
            low_score=low,
            weak_top=cal.weak_top if cal is not None else None,
            overlap_depth=s.miss_overlap_depth,
            source=source,
        )

    def calibration(self, index: ActiveIndex) -> MissCalibration | None:
        """The version's current calibration, made now if it has none or it is stale."""
        name = index.version.version
        cal = self._newest(index)
        if cal is not None and not self._needs_recount(name):
            return cal
        with self._lock:
            cal = self._newest(index)
            last = self._checked.get(name)
            if last is not None and time.monotonic() - last[0] < RECOUNT_INTERVAL:
                return cal  # another thread just looked
            n_chunks = self.rt.catalog.counts()["chunks"]
            self._checked[name] = (time.monotonic(), n_chunks)
            if cal is not None and not cal.stale(n_chunks):
                return cal
            if cal is None and last is not None and last[1] == n_chunks:
                return None  # too small last time, and nothing changed since
            try:
                fresh = recalibrate(self.rt, index)
            except RagloopError as exc:  # a store hiccup must not fail the question
                log.warning("miss calibration of %s failed: %s", name, exc)
                return cal
            if fresh is not None:
                self._made[name] = fresh
                return fresh
            return cal

    def _newest(self, index: ActiveIndex) -> MissCalibration | None:
        stored = index.version.miss_calibration
        candidates = [c for c in (self._made.get(index.version.version),) if c is not None]
        if stored:
            candidates.append(MissCalibration.from_dict(stored))
        return max(candidates, key=lambda c: c.created_at, default=None)

    def _needs_recount(self, name: str) -> bool:
        last = self._checked.get(name)
        return last is None or time.monotonic() - last[0] >= RECOUNT_INTERVAL

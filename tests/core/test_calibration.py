"""Per-version miss calibration and the miss signals, with the keyword fake embedder."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragloop.core.answering import Answerer, QueryRequest
from ragloop.core.calibration import Calibrations, MissCalibration, calibrate, cuts
from ragloop.core.miss_flags import MissThresholds, miss_reasons
from ragloop.core.records import ChunkRecord, Hit
from ragloop.core.retriever import SideRankings
from ragloop.core.runtime import Runtime, open_runtime
from ragloop.core.settings import Settings
from ragloop.core.storage.querylog import QueryLog
from ragloop.ingest.pipeline import Ingestor
from tests.fakes import FakeGenerator, KeywordEmbedder, fake_registry

N_DOCS = 25
VOCAB = [f"w{i}" for i in range(6 * N_DOCS)]


@pytest.fixture
def disjoint_runtime(fake_settings: Settings, tmp_path: Path) -> Iterator[Runtime]:
    """A corpus of documents that share no word: a document's own sentence has cosine 1 with
    it, and 0 with every other one, so both calibration distributions are known exactly."""
    rt = open_runtime(fake_settings, registry=fake_registry(KeywordEmbedder(VOCAB)))
    for d in range(N_DOCS):
        words = " ".join(f"w{6 * d + j}" for j in range(6))
        (tmp_path / f"d{d}.txt").write_text(f"{words}.")
    Ingestor(rt).ingest([tmp_path / f"d{d}.txt" for d in range(N_DOCS)])
    yield rt
    rt.close()


def test_cuts_are_the_present_10th_percentile_and_the_absent_median() -> None:
    present = [i / 100 for i in range(1, 101)]  # 0.01 .. 1.00
    assert cuts(present, [0.2, 0.3, 0.9]) == (pytest.approx(0.109), pytest.approx(0.3))


def test_calibration_measures_present_and_absent_questions(disjoint_runtime: Runtime) -> None:
    rt = disjoint_runtime
    cal = calibrate(rt.active_index(), rt.store, rt.catalog, sample=200)
    assert cal is not None
    assert cal.n_questions == N_DOCS and cal.n_chunks == N_DOCS
    assert cal.low_score == pytest.approx(1.0, abs=1e-3)  # every question finds its document
    assert cal.weak_top == pytest.approx(0.0, abs=1e-3)  # and nothing else shares a word


def test_too_small_a_corpus_is_not_calibrated_and_falls_back(fake_runtime: Runtime) -> None:
    index = fake_runtime.active_index()
    assert calibrate(index, fake_runtime.store, fake_runtime.catalog) is None
    t = Calibrations(fake_runtime).thresholds(index)
    assert (t.low_score, t.weak_top, t.source) == (0.40, None, "fallback")


def test_first_question_calibrates_and_stores_it_with_the_version(
    disjoint_runtime: Runtime,
) -> None:
    rt = disjoint_runtime
    t = Calibrations(rt).thresholds(rt.active_index())
    assert t.source == "calibrated" and t.low_score == pytest.approx(1.0, abs=1e-3)
    stored = rt.refresh().version.miss_calibration
    assert stored is not None and stored["n_questions"] == N_DOCS
    assert rt.catalog.get_version("base").fusion is not None  # set_info kept other keys


def test_explicit_setting_overrides_the_calibration(disjoint_runtime: Runtime) -> None:
    rt = disjoint_runtime
    rt.settings = rt.settings.model_copy(update={"miss_score_threshold": 0.25})
    rt.settings.model_fields_set.add("miss_score_threshold")
    t = Calibrations(rt).thresholds(rt.active_index())
    assert (t.low_score, t.source) == (0.25, "setting")
    assert t.weak_top == pytest.approx(0.0, abs=1e-3)  # the other signal keeps its own cut


def test_thresholds_are_per_version_and_switch_on_hot_swap(disjoint_runtime: Runtime) -> None:
    rt = disjoint_runtime
    calibrations = Calibrations(rt)
    base = rt.active_index()
    assert calibrations.thresholds(base).low_score == pytest.approx(1.0, abs=1e-3)
    other = MissCalibration(low_score=0.3, weak_top=0.2, n_questions=50, n_chunks=N_DOCS)
    v2 = dataclasses.replace(
        base.version, version="v2", status="candidate", info={"miss": other.to_dict()}
    )
    rt.catalog.add_version(v2)
    rt.catalog.set_active("v2")
    swapped = rt.refresh()
    assert swapped.version.version == "v2"
    assert (
        calibrations.thresholds(swapped).low_score,
        calibrations.thresholds(swapped).weak_top,
    ) == (
        0.3,
        0.2,
    )
    assert calibrations.thresholds(base).low_score == pytest.approx(1.0, abs=1e-3)


# ---- the signals, on hand-made retrieval results --------------------------------------------


def _hit(cid: str, doc: str, dense: float | None) -> Hit:
    chunk = ChunkRecord(cid, doc, 0, "text", "", 0, 4, 1)
    return Hit(chunk, dense or 0.0, doc, "", dense_score=dense)


T = MissThresholds(low_score=0.5, weak_top=0.6, overlap_depth=2, source="calibrated")


@pytest.mark.parametrize(
    ("dense", "lexical", "best", "expected"),
    [
        (["a", "b"], ["a", "c"], 0.9, []),  # agree on top-1, good score
        (["a", "b"], ["a", "c"], 0.4, ["low_score"]),
        (["a", "b"], ["c", "d"], 0.9, ["no_overlap"]),  # share nothing in the top 2
        (["a", "b"], ["b", "a"], 0.55, ["weak_top"]),  # top-1 differs and score is weak
        (["a", "b"], ["b", "a"], 0.65, []),  # top-1 differs but the score is fine
        (["a", "b"], [], 0.9, ["no_overlap"]),  # no lexical match at all
        (["a", "b"], ["c", "a"], 0.3, ["low_score", "weak_top"]),
    ],
)
def test_each_signal_flags_exactly_its_cases(
    dense: list[str], lexical: list[str], best: float, expected: list[str]
) -> None:
    docs = {"a": "A", "b": "B", "c": "C", "d": "D"}
    hits = [_hit(c, docs[c], best if i == 0 else best - 0.1) for i, c in enumerate(dense)]
    sides = SideRankings([(c, 0.0) for c in dense], [(c, 1.0) for c in lexical], "hybrid")
    assert miss_reasons(hits, sides, T, no_answer=False) == expected


def test_chunks_of_one_document_agree_and_single_side_modes_skip_disagreement() -> None:
    hits = [_hit("a1", "A", 0.9), _hit("a2", "A", 0.8)]
    hybrid = SideRankings([("a1", 0.9)], [("a2", 3.0)], "hybrid")
    assert miss_reasons(hits, hybrid, T, no_answer=False) == []  # same document
    dense_only = SideRankings(mode="dense")
    assert miss_reasons(hits, dense_only, T, no_answer=True) == ["no_answer"]
    assert miss_reasons([], SideRankings(mode="hybrid"), T, no_answer=False) == ["low_score"]


def test_answerer_records_each_reason_and_the_log_filters_by_it(
    disjoint_runtime: Runtime,
) -> None:
    rt = disjoint_runtime
    log = QueryLog(rt.catalog.engine)
    abstain = FakeGenerator(abstain=True)
    answerer = Answerer(rt, log, lambda _name: abstain, FakeGenerator("extractive"))
    # w0 is document d0's word; "zzz" matches nothing: dense finds d0 at cosine 1/sqrt(6)...
    out = answerer.answer(QueryRequest(question="w0", k=3))
    # ... below the calibrated cut (1.0); BM25 agrees on d0; the generator abstains.
    assert out.miss_reasons == ["low_score", "no_answer"]
    logged = log.get(out.query_id)
    assert logged.miss and logged.miss_reasons == ["low_score", "no_answer"]
    found, total = log.find(reason="no_answer")
    assert total == 1 and found[0].id == out.query_id
    assert log.find(reason="no_overlap")[1] == 0

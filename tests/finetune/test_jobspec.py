"""The server/worker protocol: a job directory round-trips, and progress lands where it did."""

import json
from pathlib import Path
from typing import Any

import pytest

from ragloop.finetune.gate import decide
from ragloop.finetune.jobspec import (
    ENCODING,
    LOG_TAIL_CHARS,
    PAIRS,
    REEMBEDDING,
    TRAINING,
    CorpusRow,
    JobFiles,
    JobSpec,
    TrainRow,
    write_gate,
)
from ragloop.finetune.options import RetrainOptions
from ragloop.finetune.pairs import PAIR_STEPS


def _spec(tmp_path: Path, options: RetrainOptions, **extra: Any) -> JobSpec:
    """Job ``j1`` training ``ft-1`` from ``base`` in ``tmp_path``."""
    return JobSpec(
        job_id="j1",
        version="ft-1",
        data_dir=str(tmp_path),
        current_version="base",
        candidate_dir=str(tmp_path / "models" / "ft-1"),
        options=options,
        **extra,
    )


def test_a_job_directory_round_trips(tmp_path: Path) -> None:
    files = JobFiles(tmp_path)
    spec = _spec(tmp_path, RetrainOptions(loss="triplet", sources=["labelled"], margin=0.02))
    files.write_spec(spec)
    assert files.read_spec() == spec
    # The worker and older tooling read job.json as plain JSON with the options inline.
    assert json.loads(files.spec.read_text())["options"]["loss"] == "triplet"

    rows = [
        TrainRow(anchor="q", positive="p", positive_id="c1", source="labelled"),
        TrainRow(
            anchor="q2",
            positive="p2",
            positive_id="c2",
            source="synthetic",
            negative="n",
            negative_id="c3",
        ),
    ]
    files.write_train(iter(rows))
    assert files.read_train() == rows
    corpus = [CorpusRow(id="c1", doc="d1", text="t1"), CorpusRow(id="c2", doc="d2", text="t2")]
    files.write_corpus(corpus)
    assert files.read_corpus() == corpus

    gate = decide("held-out pairs", 40, {"ndcg@10": 0.5}, {"ndcg@10": 0.6}, 0.01, [0.1] * 40)
    write_gate(gate, files.gate, tmp_path / "copy.json")
    assert files.read_gate() == gate and gate.promote
    assert (tmp_path / "copy.json").read_text() == files.gate.read_text()


def test_the_log_tail_is_the_end_of_the_log(tmp_path: Path) -> None:
    files = JobFiles(tmp_path)
    files.log.write_text("x" * 5000 + "\nValueError: the last line")
    tail = files.log_tail()
    assert len(tail) == LOG_TAIL_CHARS and tail.endswith("ValueError: the last line")


def test_stage_progress_points() -> None:
    # Pair building fills the first tenth in steps; training, encoding and re-embedding follow.
    assert [PAIRS.at(step, PAIR_STEPS) for step in (1, 2, 4)] == [0.02, 0.04, 0.08]
    assert TRAINING.at(0) == PAIRS.end == 0.1 and TRAINING.at(0.5) == 0.4
    assert ENCODING.at(0, 0) == TRAINING.end == 0.7 and ENCODING.at(50, 100) == 0.8
    assert REEMBEDDING.at(1, 3) == 0.9333 and REEMBEDDING.at(3, 3) == 1.0


def test_the_worker_gates_with_the_servers_settings_not_only_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server built with Settings(retrieval="dense", ...) in code, or a worker on another host
    # whose environment says otherwise, must still gate as that server serves.
    from ragloop.core.settings import Settings
    from ragloop.finetune.worker import worker_settings

    server = Settings(
        data_dir=tmp_path,
        retrieval="dense",
        fusion_dense_weight=0.7,
        gate_margin=0.02,
        admin_token="server-secret",
        device="cpu",
    )
    carried = server.for_worker()
    assert carried["retrieval"] == "dense" and carried["fusion_dense_weight"] == 0.7
    assert not {"admin_token", "device", "data_dir"} & set(carried)
    spec = _spec(tmp_path, RetrainOptions(), settings=carried)
    JobFiles(tmp_path).write_spec(spec)
    monkeypatch.setenv("RAGLOOP_RETRIEVAL", "hybrid")  # the worker host's own environment
    got = worker_settings(JobFiles(tmp_path).read_spec())
    assert got.retrieval == "dense" and got.gate_margin == 0.02
    # only what the server set explicitly overrides: an unset fusion field stays unset
    assert got.fusion_overrides == {"dense_weight": 0.7}
    assert got.admin_token is None and got.data_dir == tmp_path

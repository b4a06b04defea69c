"""No forgetting: the general set's allowed drop, the built-in neighbour-agreement check, and
the gate refusing a candidate that forgot (fake embedders, fast)."""

import json
from pathlib import Path

import numpy as np
import pytest

from ragloop.eval.datasets import load_beir
from ragloop.finetune.forgetting import (
    drift_check,
    drift_sample,
    general_check,
    neighbour_agreement,
    sample_general,
)
from ragloop.finetune.gate import decide
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder

TOPICS = {"a": "scurvy", "b": "volcano", "c": "whale", "d": "bread"}


def _general(root: Path) -> Path:
    root.mkdir()
    (root / "qrels").mkdir()
    (root / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": d, "title": "", "text": f"all about {w}"}) + "\n"
            for d, w in TOPICS.items()
        )
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{d}", "text": w}) + "\n" for d, w in TOPICS.items())
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{d}\t{d}\t1\n" for d in TOPICS)
    )
    return root


def test_a_candidate_that_forgot_words_fails_the_general_set(tmp_path: Path) -> None:
    ds = load_beir(_general(tmp_path / "general"), "test")
    current = KeywordEmbedder(DEFAULT_VOCAB)
    # the candidate no longer knows "whale" or "bread": those questions find nothing first
    forgot = KeywordEmbedder([w for w in DEFAULT_VOCAB if w not in ("whale", "bread")])
    check = general_check(current, forgot, ds, max_drop=0.02)
    assert check.current == 1.0 and check.candidate < 0.98
    assert check.passed is False and "more than the allowed drop 0.02" in check.detail
    same = general_check(current, KeywordEmbedder(DEFAULT_VOCAB), ds, max_drop=0.02)
    assert same.passed is True and same.candidate == same.current == 1.0
    # sampling bounds the questions and keeps their gold documents
    small = sample_general(ds, 2, seed=1)
    assert len(small.queries) == 2
    assert {d for q in small.queries for d in small.relevant(q)} <= set(small.corpus)


def test_neighbour_agreement_is_one_for_the_same_space_and_falls_when_scrambled() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(60, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    assert neighbour_agreement(base, base) == 1.0
    rotated = base @ np.linalg.qr(rng.normal(size=(16, 16)))[0].astype(np.float32)
    assert neighbour_agreement(base, rotated) == pytest.approx(1.0)  # distances kept
    scrambled = base[rng.permutation(60)]
    assert neighbour_agreement(base, scrambled) < 0.4
    check = drift_check(base, base, scrambled, min_agreement=0.5)
    assert check.current == 1.0 and check.passed is False
    assert drift_check(base, base, rotated, min_agreement=0.5).passed is True
    # too few untrained chunks to have neighbourhoods: not measured, not a refusal
    tiny = drift_check(base[:12], base[:12], scrambled[:12], min_agreement=0.5)
    assert tiny.passed is True and tiny.detail.startswith("not measured")


def test_drift_sample_leaves_out_trained_chunks() -> None:
    ids = [f"c{i}" for i in range(20)]
    rows = drift_sample(ids, {"c1", "c5"}, seed=3)
    assert 1 not in rows and 5 not in rows and len(rows) == 18
    assert drift_sample(ids, {"c1", "c5"}, seed=3) == rows


def test_the_gate_refuses_a_better_candidate_that_forgot() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(60, 16)).astype(np.float32)
    ds_check = drift_check(base, base, base[rng.permutation(60)], min_agreement=0.5)
    cur, better = {"ndcg@10": 0.40}, {"ndcg@10": 0.50}
    steady = [0.1] * 40
    refused = decide("h", 40, cur, better, 0.005, steady, forgetting=ds_check)
    assert ds_check.passed is False
    assert refused.promote is False and "forgot" in refused.reason
    assert refused.forgetting is not None and refused.forgetting["passed"] is False
    ok = drift_check(base, base, base, min_agreement=0.5)
    assert decide("h", 40, cur, better, 0.005, steady, forgetting=ok).promote is True
    # and too few questions is refused before anything else, with what is missing
    few = decide("h", 12, cur, better, 0.005, steady[:12], min_questions=30, shortfall="add more")
    assert few.promote is False and few.reason == "add more"

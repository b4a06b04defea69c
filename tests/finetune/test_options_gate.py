import numpy as np
import pytest
from pydantic import ValidationError

from ragloop.finetune.gate import decide, score_chunks
from ragloop.finetune.options import RetrainOptions


def test_defaults_and_validation() -> None:
    o = RetrainOptions()
    assert o.loss == "mnrl" and o.sources == ["labelled", "pseudo", "synthetic"]
    with pytest.raises(ValidationError, match="query_only"):
        RetrainOptions(query_only=True, lora=True)
    with pytest.raises(ValidationError, match="at least one pair source"):
        RetrainOptions(sources=[])
    with pytest.raises(ValidationError):
        RetrainOptions(loss="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RetrainOptions(surprise=1)  # type: ignore[call-arg]


def test_score_chunks_ranks_documents_by_their_best_chunk() -> None:
    ids = ["a1", "a2", "b1", "c1"]
    docs = ["A", "A", "B", "C"]
    vecs = np.eye(4, dtype=np.float32)
    # query 0 is closest to a2 then b1; query 1 closest to c1
    queries = np.array([[0.1, 0.9, 0.4, 0.0], [0.0, 0.0, 0.2, 0.9]], dtype=np.float32)
    m = score_chunks(ids, docs, vecs, queries, [["B"], ["C"]])
    assert m["mrr@10"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["recall@1"] == pytest.approx(0.5)


def test_gate_decision_needs_the_margin() -> None:
    cur, better, same = {"ndcg@10": 0.60}, {"ndcg@10": 0.62}, {"ndcg@10": 0.603}
    assert decide("h", 50, cur, better, 0.01).promote is True
    no = decide("h", 50, cur, same, 0.01)
    assert no.promote is False and "below the margin" in no.reason
    assert decide("h", 0, cur, better, 0.0).promote is False  # nothing to judge on
    assert decide("h", 50, cur, {"ndcg@10": 0.5}, 0.0).promote is False


def test_gate_rejects_a_gain_within_noise_and_keeps_a_consistent_one() -> None:
    from ragloop.finetune.gate import bootstrap_lower_bound

    cur, better = {"ndcg@10": 0.40}, {"ndcg@10": 0.43}
    # +0.03 on average, but two questions swing by a whole point each way: noise
    noisy = [1.0, -1.0, 1.0, -1.0, 0.9] + [0.0] * 45
    no = decide("h", 50, cur, better, 0.005, noisy)
    assert no.promote is False and "within noise" in no.reason
    assert no.delta_lower_bound is not None and no.delta_lower_bound <= 0
    # the same mean gain spread over many questions is not noise
    steady = [0.03] * 40 + [0.0] * 10
    yes = decide("h", 50, cur, {"ndcg@10": 0.424}, 0.005, steady)
    assert yes.promote is True and yes.delta_lower_bound == pytest.approx(0.024, abs=0.01)
    assert bootstrap_lower_bound([]) == 0.0

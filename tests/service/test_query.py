import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fakes import FakeGenerator
from tests.service.conftest import ClientFactory


@pytest.fixture
def make_client(make_client: ClientFactory, catalog_url: str) -> ClientFactory:
    """Every test here runs once on a SQLite catalog and once on a PostgreSQL one."""

    def build(generators: dict[str, Any] | None = None, **overrides: Any) -> TestClient:
        overrides.setdefault("catalog_url", catalog_url)
        return make_client(generators, **overrides)

    return build


def _events(text: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_answer_cites_valid_sources(client: TestClient) -> None:
    r = client.post("/v1/query", json={"question": "volcano lava magma", "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["n"] for s in body["sources"]] == [1, 2, 3]
    assert body["sources"][0]["source"].endswith("volcano.txt")
    assert body["sources"][0]["score"] >= body["sources"][1]["score"]
    assert body["citations"] == [1, 2, 3]
    assert "[1]" in body["answer"]
    assert body["generator"] == "fake" and body["generator_error"] is None
    assert body["model_version"] == "base"
    assert body["miss"] is False and body["miss_reasons"] == []
    assert set(body["timings_ms"]) == {"retrieve", "generate", "total"}


def test_filters_restrict_sources(client: TestClient) -> None:
    r = client.post(
        "/v1/query", json={"question": "ocean", "k": 5, "filters": {"document_id": "w1"}}
    )
    assert r.status_code == 200
    assert {s["document_id"] for s in r.json()["sources"]} == {"w1"}


def test_stream_event_order(client: TestClient) -> None:
    r = client.post("/v1/query/stream", json={"question": "whale ocean", "k": 2})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.text)
    kinds = [e for e, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "end"
    assert set(kinds[1:-1]) == {"delta"} and len(kinds) >= 3
    answer = "".join(d["text"] for e, d in events if e == "delta")
    assert "[1]" in answer
    end = events[-1][1]
    assert end["miss"] is False and len(end["query_id"]) == 32
    logged = client.app.state.rl.querylog.get(end["query_id"])  # type: ignore[attr-defined]
    assert logged.answer == answer.strip()
    assert [cid for cid, _ in logged.retrieved] == [s["chunk_id"] for s in events[0][1]["sources"]]


def test_low_score_miss_is_logged(make_client: ClientFactory) -> None:
    client = make_client(miss_score_threshold=0.99)
    body = client.post("/v1/query", json={"question": "whale and lava"}).json()
    assert body["miss"] is True and body["miss_reasons"] == ["low_score"]
    # nothing in the vocabulary at all: no overlap, lowest scores
    none = client.post("/v1/query", json={"question": "quantum chromodynamics"}).json()
    assert "low_score" in none["miss_reasons"]


def test_abstention_is_a_no_answer_miss(make_client: ClientFactory) -> None:
    client = make_client({"fake": FakeGenerator("fake", abstain=True)})
    body = client.post("/v1/query", json={"question": "whale"}).json()
    assert body["miss"] is True and body["miss_reasons"] == ["no_answer"]
    assert "NO_ANSWER" not in body["answer"]
    assert body["answer"].startswith("The documents do not contain the answer")


def test_provider_error_degrades_to_extractive(make_client: ClientFactory) -> None:
    client = make_client({"fake": FakeGenerator("fake", fail_after=0)})
    r = client.post("/v1/query", json={"question": "whale"})
    assert r.status_code == 200
    body = r.json()
    assert body["generator"] == "extractive"
    assert "529" in body["generator_error"]
    assert body["answer"]


def test_provider_error_mid_stream_ends_cleanly(make_client: ClientFactory) -> None:
    client = make_client({"fake": FakeGenerator("fake", fail_after=1)})
    events = _events(client.post("/v1/query/stream", json={"question": "ocean", "k": 3}).text)
    deltas = [d["text"] for e, d in events if e == "delta"]
    assert len(deltas) == 1  # what was sent stays, nothing is repeated by the fallback
    assert events[-1][0] == "end" and "529" in events[-1][1]["generator_error"]


def test_generator_override_and_unknown_generator(client: TestClient) -> None:
    body = client.post("/v1/query", json={"question": "whale", "generator": "extractive"}).json()
    assert body["generator"] == "extractive"
    bad = client.post("/v1/query", json={"question": "whale", "generator": "gpt-9"})
    assert (
        bad.status_code == 400 and "available: auto, extractive" in bad.json()["error"]["message"]
    )


def test_feedback_with_chunk_becomes_labelled_pair_and_down_is_a_miss(client: TestClient) -> None:
    q = client.post("/v1/query", json={"question": "ocean life", "k": 3}).json()
    chunk = q["sources"][1]["chunk_id"]
    r = client.post(
        "/v1/feedback",
        json={
            "query_id": q["query_id"],
            "rating": "down",
            "relevant_chunk_ids": [chunk],
            "comment": "wrong one",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["miss_reasons"] == ["negative_feedback"]
    log = client.app.state.rl.querylog  # type: ignore[attr-defined]
    assert [(p["question"], p["chunk_id"], p["source"]) for p in log.pairs()] == [
        ("ocean life", chunk, "feedback")
    ]
    assert log.get(q["query_id"]).miss is True


def test_feedback_naming_a_document_uses_its_best_chunk(client: TestClient) -> None:
    q = client.post("/v1/query", json={"question": "citrus vitamin", "k": 1}).json()
    r = client.post(
        "/v1/feedback",
        json={"query_id": q["query_id"], "rating": "up", "relevant_document_ids": ["w1"]},
    )
    assert r.status_code == 200
    [cid] = r.json()["labelled_chunk_ids"]
    chunk = client.app.state.rl.runtime.catalog.get_chunks([cid])[cid]  # type: ignore[attr-defined]
    assert chunk.document_id == "w1"
    assert r.json()["miss"] is False


def test_bad_input_is_4xx_with_a_message(client: TestClient) -> None:
    cases = [
        ({"question": ""}, 422),
        ({"question": "   "}, 400),
        ({"question": "x" * 2001}, 400),
        ({"question": "ok", "k": 0}, 422),
        ({"question": "ok", "k": 51}, 400),
        ({"question": "ok", "filters": {"colour": "red"}}, 422),
        ({"question": "ok", "surprise": 1}, 422),
        ({}, 422),
    ]
    for body, status in cases:
        r = client.post("/v1/query", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["message"]
    broken = client.post(
        "/v1/query", content=b'{"question": ', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "malformed_json"
    unknown = client.post("/v1/feedback", json={"query_id": "nope", "rating": "up"})
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
    q = client.post("/v1/query", json={"question": "whale"}).json()
    bad_chunk = client.post(
        "/v1/feedback",
        json={"query_id": q["query_id"], "rating": "up", "relevant_chunk_ids": ["zzz"]},
    )
    assert bad_chunk.status_code == 400

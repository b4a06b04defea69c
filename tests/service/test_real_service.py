"""The real app end to end: bundled model, embedded Chroma, the extractive generator."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ragloop.core.settings import Settings
from ragloop.service.app import create_app
from tests.ingest.samples import write_corpus

pytestmark = pytest.mark.integration


def test_upload_ask_cite_feedback_with_the_real_model(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "docs")
    settings = Settings(data_dir=tmp_path / "data", generator="extractive", admin_token="t")
    with TestClient(create_app(settings)) as client:
        files = [("files", (p.name, p.read_bytes())) for p in sorted(corpus.iterdir())]
        admin = {"Authorization": "Bearer t"}  # writes need a key or the admin token
        job = client.post("/v1/documents", files=files, headers=admin).json()
        while not (state := client.get(f"/v1/jobs/{job['id']}").json())["done"]:
            pass
        assert state["state"] == "succeeded" and state["result"]["added"] == 8

        body = client.post("/v1/query", json={"question": "What causes scurvy?", "k": 3}).json()
        assert body["generator"] == "extractive" and body["model_version"] == "base"
        assert body["sources"][0]["title"] == "Scurvy"
        assert "vitamin C" in body["answer"]
        assert body["citations"] and all(1 <= n <= 3 for n in body["citations"])
        cited = body["sources"][body["citations"][0] - 1]["text"]
        assert "vitamin C" in cited
        assert body["miss"] is False

        off_topic = client.post("/v1/query", json={"question": "Who won the 1998 World Cup final?"})
        assert off_topic.json()["miss"] is True

        fb = client.post(
            "/v1/feedback",
            json={"query_id": off_topic.json()["query_id"], "rating": "down"},
        ).json()
        assert "negative_feedback" in fb["miss_reasons"]
        misses = client.get("/admin/misses", headers={"Authorization": "Bearer t"}).json()
        assert misses["items"][0]["question"] == "Who won the 1998 World Cup final?"

        asked = client.post("/v1/query", json={"question": "x", "generator": "anthropic"})
        assert asked.status_code == 400 and "ANTHROPIC_API_KEY" in asked.json()["error"]["message"]

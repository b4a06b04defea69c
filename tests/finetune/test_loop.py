"""The whole loop in the real app: retrain -> gate -> blue/green promote -> hot-swap ->
rollback, with the real bundled model and embedded Chroma."""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ragloop.core.settings import Settings
from ragloop.service.app import create_app

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": "Bearer t"}
TOPICS = {
    "scurvy": "Scurvy is caused by a lack of vitamin C in the diet of sailors.",
    "volcano": "A volcano erupts lava when magma rises through the crust.",
    "reef": "Coral reefs shelter fish and other ocean life in warm shallow seas.",
    "bread": "Bread is baked from flour, water, salt and yeast.",
    "rail": "A train runs on steel rails between the stations of a line.",
    "whale": "The blue whale is the largest animal that ever lived in the ocean.",
}


def _gate_dataset(root: Path) -> Path:
    """A tiny BEIR set over the same documents, for a deterministic gate."""
    root.mkdir()
    (root / "qrels").mkdir()
    with (root / "corpus.jsonl").open("w") as fh:
        for k, text in TOPICS.items():
            fh.write(json.dumps({"_id": k, "title": k, "text": text}) + "\n")
    qs = {
        "q1": "why did sailors get sick",
        "q2": "molten rock from a mountain",
        "q3": "where do fish live near the coast",
        "q4": "how is a loaf made",
    }
    gold = {"q1": "scurvy", "q2": "volcano", "q3": "reef", "q4": "bread"}
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in qs.items())
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in gold.items())
    )
    return root


def _wait(client: TestClient, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/admin/jobs/{job_id}", headers=ADMIN).json()
        if job["done"]:
            return job  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def topics_corpus() -> str:
    """TOPICS as a BEIR ``corpus.jsonl`` (each topic's id is its title)."""
    return "".join(json.dumps({"_id": k, "title": k, "text": v}) + "\n" for k, v in TOPICS.items())


@contextmanager
def loop_app(tmp_path: Path, **overrides: Any) -> Iterator[tuple[TestClient, Path]]:
    """A real-model service over TOPICS, ingested through the API, with one feedback pair (the
    scurvy question), and the gate set under its gate datasets root. Dense retrieval:
    ``_consistent`` checks each source's score is its cosine under the reported version (in
    hybrid mode the score is the fused one)."""
    settings = Settings(
        **{
            "data_dir": tmp_path / "data",
            "generator": "extractive",
            "admin_token": "t",
            "retrieval": "dense",
            "gate_datasets_root": tmp_path,  # the gate set below is written there
        }
        | overrides
    )
    with TestClient(create_app(settings)) as client:
        files = [("files", ("corpus.jsonl", topics_corpus()))]
        job = client.post("/v1/documents", files=files, headers=ADMIN).json()
        while not client.get(f"/v1/jobs/{job['id']}").json()["done"]:
            time.sleep(0.1)
        q = client.post("/v1/query", json={"question": "why did sailors get sick", "k": 3}).json()
        client.post(
            "/v1/feedback",
            json={"query_id": q["query_id"], "rating": "up", "relevant_document_ids": ["scurvy"]},
        )
        yield client, _gate_dataset(tmp_path / "gate")


@pytest.fixture
def loop_client(tmp_path: Path, catalog_url: str) -> Iterator[tuple[TestClient, Path]]:
    """``loop_app`` keeping two versions; every test here runs on a SQLite catalog and on a
    PostgreSQL one."""
    with loop_app(tmp_path, catalog_url=catalog_url, keep_versions=2) as app:
        yield app


def _consistent(client: TestClient, body: dict[str, Any], question: str) -> None:
    """The reported version's model and collection produced every score of the response."""
    rt = client.app.state.rl.runtime  # type: ignore[attr-defined]
    index = rt.index_for(rt.catalog.get_version(body["model_version"]))
    q = index.embedder.embed_query(question)
    stored = rt.store.vectors(index.collection, [s["chunk_id"] for s in body["sources"]])
    for s in body["sources"]:
        assert abs(float(q @ stored[s["chunk_id"]]) - s["score"]) < 2e-3, (body["model_version"], s)


def test_promotion_hot_swap_and_rollback(loop_client) -> None:  # type: ignore[no-untyped-def]
    client, gate = loop_client
    question = "why did sailors get sick"
    stop = threading.Event()
    seen: list[dict[str, Any]] = []

    def ask() -> None:
        while not stop.is_set():
            r = client.post("/v1/query", json={"question": question, "k": 3})
            assert r.status_code == 200
            seen.append(r.json())
            time.sleep(0.05)

    workers = [threading.Thread(target=ask) for _ in range(3)]
    for w in workers:
        w.start()
    options = {
        "sources": ["labelled", "synthetic"],
        "epochs": 3,
        "batch_size": 4,
        "learning_rate": 1e-4,
        "gate_dataset": str(gate),
        "min_gate_questions": 1,  # a 4-question set, named by the admin
        "margin": 0.0,
    }
    job = client.post("/admin/retrain", json=options, headers=ADMIN)
    assert job.status_code == 202, job.text
    second = client.post("/admin/retrain", json=options, headers=ADMIN)
    assert second.status_code == 409  # one job at a time
    done = _wait(client, job.json()["id"])
    time.sleep(1.5)  # the query threads see the new pointer
    stop.set()
    for w in workers:
        w.join()
    assert done["state"] == "promoted", done
    version = done["result"]["version"]
    assert done["result"]["manifest"]["sources"]["labelled"] == 1
    assert done["result"]["gate"]["gate_set"].startswith("gate/test")
    versions = {v["version"]: v for v in client.get("/admin/models", headers=ADMIN).json()}
    assert versions[version]["active"] and versions["base"]["status"] == "retired"
    assert {b["model_version"] for b in seen} == {"base", version}
    for body in [*seen[:: max(1, len(seen) // 20)], seen[-1]]:
        _consistent(client, body, question)
    model_dir = Path(client.app.state.rl.settings.models_dir / version)  # type: ignore[attr-defined]
    assert {"manifest.json", "training.json", "gate.json", "config.json"} <= {
        p.name for p in model_dir.iterdir()
    }

    # rollback, then roll forward; unknown versions are 404
    assert client.post("/admin/models/base/activate", headers=ADMIN).status_code == 200
    body = client.post("/v1/query", json={"question": question}).json()
    assert body["model_version"] == "base"
    _consistent(client, body, question)
    assert client.post(f"/admin/models/{version}/activate", headers=ADMIN).status_code == 200
    assert client.post("/admin/models/nope/activate", headers=ADMIN).status_code == 404


def test_wrong_pairs_are_rejected_and_bad_requests_change_nothing(loop_client) -> None:  # type: ignore[no-untyped-def]
    client, gate = loop_client
    options = {
        "sources": ["synthetic"],
        "epochs": 4,
        "batch_size": 4,
        "learning_rate": 3e-4,
        "shuffle_positives": True,
        "gate_dataset": str(gate),
        "min_gate_questions": 1,  # a 4-question set, named by the admin
        "margin": 0.01,
    }
    done = _wait(client, client.post("/admin/retrain", json=options, headers=ADMIN).json()["id"])
    assert done["state"] == "rejected", done
    assert done["result"]["gate"]["promote"] is False
    models = client.get("/admin/models", headers=ADMIN).json()
    assert [m["version"] for m in models if m["active"]] == ["base"]
    rejected = next(m for m in models if m["status"] == "rejected")
    assert (
        client.post(f"/admin/models/{rejected['version']}/activate", headers=ADMIN).status_code
        == 409
    )


def test_cancel_a_running_job(loop_client) -> None:  # type: ignore[no-untyped-def]
    client, gate = loop_client
    options = {"sources": ["synthetic"], "epochs": 20, "batch_size": 2, "gate_dataset": str(gate)}
    job = client.post("/admin/retrain", json=options, headers=ADMIN).json()
    cancelled = client.post(f"/admin/jobs/{job['id']}/cancel", headers=ADMIN)
    assert cancelled.status_code == 200
    done = _wait(client, job["id"])
    assert done["state"] == "cancelled"
    assert client.post(f"/admin/jobs/{job['id']}/cancel", headers=ADMIN).status_code == 409
    assert [
        m["version"] for m in client.get("/admin/models", headers=ADMIN).json() if m["active"]
    ] == ["base"]


def test_query_only_adapter_promotes_without_re_embedding(loop_client) -> None:  # type: ignore[no-untyped-def]
    client, gate = loop_client
    rt = client.app.state.rl.runtime  # type: ignore[attr-defined]
    base_collection = rt.active_index().collection
    options = {
        "sources": ["labelled", "synthetic"],
        "query_only": True,
        "epochs": 5,
        "gate_dataset": str(gate),
        "min_gate_questions": 1,  # a 4-question set, named by the admin
        "margin": 0.0,
    }
    done = _wait(client, client.post("/admin/retrain", json=options, headers=ADMIN).json()["id"])
    assert done["state"] == "promoted", done
    active = rt.refresh()
    assert active.version.info["kind"] == "query_adapter"
    assert active.collection == base_collection  # same vectors, nothing re-embedded
    body = client.post("/v1/query", json={"question": "why did sailors get sick"}).json()
    assert body["model_version"] == done["result"]["version"]
    _consistent(client, body, "why did sailors get sick")
    assert np.isfinite(body["sources"][0]["score"])

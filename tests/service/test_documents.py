from fastapi.testclient import TestClient

from tests.ingest.samples import make_pdf
from tests.service.conftest import WRITER, ClientFactory, wait_job


def test_upload_runs_an_ingest_job_and_documents_can_be_deleted(
    client: TestClient, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    pdf = make_pdf(
        tmp_path / "banana.pdf", ["A banana is yellow fruit.", "Banana bread uses flour."]
    )
    r = client.post(
        "/v1/documents",
        headers=WRITER,
        files=[
            ("files", ("notes.md", b"# Apple notes\n\nAn apple and an orange.", "text/markdown")),
            ("files", ("banana.pdf", pdf.read_bytes(), "application/pdf")),
            ("files", ("empty.txt", b"", "text/plain")),
        ],
    )
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"])
    assert job["state"] == "succeeded" and job["progress"] == 1.0
    assert job["result"]["added"] == 2
    assert [e["reason"] for e in job["errors"]] == ["empty file"]
    docs = client.get("/v1/documents", params={"limit": 100}).json()
    assert docs["total"] == 10
    banana = next(d for d in docs["documents"] if d["source"].endswith("banana.pdf"))
    hits = client.post("/v1/query", json={"question": "banana bread", "k": 1}).json()
    assert hits["sources"][0]["document_id"] == banana["id"]

    # re-uploading the same name replaces that document instead of adding one
    again = client.post(
        "/v1/documents",
        headers=WRITER,
        files=[("files", ("notes.md", b"# Apple notes\n\nOnly apples now.", "text/markdown"))],
    )
    job = wait_job(client, again.json()["id"])
    assert (job["result"]["updated"], job["result"]["added"]) == (1, 0)

    gone = client.delete(f"/v1/documents/{banana['id']}")
    assert gone.status_code == 200 and gone.json()["chunks_deleted"] >= 1
    hits = client.post("/v1/query", json={"question": "banana bread", "k": 5}).json()
    assert banana["id"] not in {s["document_id"] for s in hits["sources"]}
    assert client.delete(f"/v1/documents/{banana['id']}").status_code == 404


def test_upload_limits(make_client: ClientFactory) -> None:
    client = make_client(max_upload_files=2, max_file_mb=0.001)
    too_many = client.post(
        "/v1/documents",
        headers=WRITER,
        files=[("files", (f"{i}.txt", b"x", "text/plain")) for i in range(3)],
    )
    assert too_many.status_code == 400 and "limit is 2" in too_many.json()["error"]["message"]
    bad_type = client.post(
        "/v1/documents",
        headers=WRITER,
        files=[("files", ("x.exe", b"MZ", "application/octet-stream"))],
    )
    assert bad_type.status_code == 415
    big = client.post(
        "/v1/documents",
        headers=WRITER,
        files=[("files", ("big.txt", b"word " * 1000, "text/plain"))],
    )
    assert big.status_code == 413 and "RAGLOOP_MAX_FILE_MB" in big.json()["error"]["message"]
    none = client.post("/v1/documents")
    assert none.status_code == 422
    assert client.get("/v1/jobs/unknown").status_code == 404


def test_path_tricks_in_file_names_stay_in_the_uploads_folder(client: TestClient) -> None:
    r = client.post(
        "/v1/documents",
        headers=WRITER,
        files=[("files", ("../../etc/evil.md", b"# Evil\n\nwhale", "text/markdown"))],
    )
    job = wait_job(client, r.json()["id"])
    assert job["params"]["files"] == ["evil.md"]
    state = client.app.state.rl  # type: ignore[attr-defined]
    assert (state.settings.uploads_dir / "anonymous" / "evil.md").exists()

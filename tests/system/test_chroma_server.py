"""Ingest and query through a real ``chroma run`` server (RAGLOOP_CHROMA_URL)."""

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ingest.samples import write_corpus
from tests.system.helpers import free_port, ragloop_json

pytestmark = pytest.mark.integration


@pytest.fixture
def chroma_url(tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = free_port()
    proc = subprocess.Popen(
        [
            exe,
            "run",
            "--path",
            str(tmp_path / "chroma-server"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "chroma run exited"
            assert time.monotonic() < deadline, "chroma server did not start"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_ingest_and_query_through_a_chroma_server(tmp_path: Path, chroma_url: str) -> None:
    env = {"RAGLOOP_CHROMA_URL": chroma_url}
    data = tmp_path / "data"
    root = write_corpus(tmp_path / "docs")
    report = ragloop_json("ingest", str(root), data_dir=data, env=env)
    assert report["added"] == 8
    # nothing was written to embedded Chroma: the vectors live on the server
    assert not (data / "chroma").exists()
    status = ragloop_json("status", data_dir=data, env=env)
    assert status["chroma"] == chroma_url
    assert status["vectors"] == status["chunks"] > 0
    collections = httpx.get(
        f"{chroma_url}/api/v2/tenants/default_tenant/databases/default_database/collections"
    ).json()
    assert [c["name"] for c in collections] == [status["active_model"]["collection"]]
    result = ragloop_json("query", "a train on the rail", data_dir=data, env=env)
    assert result["results"][0]["source"].endswith("rail.pdf")
    again = ragloop_json("ingest", str(root), "--prune", data_dir=data, env=env)
    assert again["unchanged"] == 8 and again["chunks_embedded"] == 0

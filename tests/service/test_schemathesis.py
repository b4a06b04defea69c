"""Schemathesis fuzzes every operation in /openapi.json on a live loopback server: no 5xx."""

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from ragloop.core.runtime import open_runtime
from ragloop.core.settings import Settings
from ragloop.ingest.pipeline import Ingestor
from ragloop.service.app import create_app
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder, fake_generator_factory, fake_registry
from tests.ingest.samples import write_corpus
from tests.integration.helpers import free_port

TOKEN = "fuzz-admin"


@pytest.fixture
def live_url(tmp_path: Path) -> Iterator[str]:
    settings = Settings(
        data_dir=tmp_path / "data",
        embedder="fake-keyword",
        chunk_tokens=24,
        chunk_overlap=4,
        admin_token=TOKEN,
        max_file_mb=1,
    )
    registry = fake_registry(KeywordEmbedder(DEFAULT_VOCAB))
    rt = open_runtime(settings, registry=registry)
    Ingestor(rt).ingest([write_corpus(tmp_path / "docs")])
    rt.close()
    app = create_app(settings, registry=registry, generator_factory=fake_generator_factory())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)
    yield url
    server.should_exit = True
    thread.join(timeout=30)


def test_no_operation_returns_a_server_error(live_url: str, tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "st"
    proc = subprocess.run(
        [
            str(st),
            "run",
            f"{live_url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "30",
            "--seed",
            "20261122",
            "--generation-database",
            "none",
            "--header",
            f"Authorization: Bearer {TOKEN}",
        ],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=tmp_path,  # schemathesis writes its state folder into the working directory
        env=os.environ | {"NO_COLOR": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # it really exercised the API: hundreds of generated cases across every operation
    passed = re.search(r"(\d+) passed\s*\n\s*\nSeed", proc.stdout)
    assert passed and int(passed.group(1)) > 200, proc.stdout[-2000:]

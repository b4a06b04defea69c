"""A ragloop server on loopback for the real clients: uvicorn in a thread, the sample corpus."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from ragloop.core.runtime import open_runtime
from ragloop.core.settings import Settings
from ragloop.ingest.pipeline import Ingestor
from ragloop.service.app import create_app
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder, fake_generator_factory, fake_registry
from tests.ingest.samples import write_corpus
from tests.system.helpers import free_port

#: The API key the live servers accept (the snippets' ``rl_your_key`` is replaced by it).
KEY = "rl_live_test_key"
#: The admin token of the live servers (``/admin`` routes).
ADMIN_TOKEN = "rl_live_admin_token"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def fake_app(root: Path, **overrides: Any) -> FastAPI:
    """An app over the sample corpus with the keyword fake embedder and the fake generator;
    ``KEY`` is its API key and ``ADMIN_TOKEN`` its admin token unless ``overrides`` say else."""
    settings = Settings(
        data_dir=root / "data",
        embedder="fake-keyword",
        chunk_tokens=24,
        chunk_overlap=4,
        miss_score_threshold=0.1,
        **({"api_keys": KEY, "admin_token": ADMIN_TOKEN} | overrides),
    )
    registry = fake_registry(KeywordEmbedder(DEFAULT_VOCAB))
    rt = open_runtime(settings, registry=registry)
    Ingestor(rt).ingest([write_corpus(root / "docs")])
    rt.close()
    return create_app(settings, registry=registry, generator_factory=fake_generator_factory())


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port; yields its base URL once ready."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"ragloop did not start on {url}")
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def snippet(name: str, url: str = "", key: str = KEY) -> str:
    """The code block after ``<!-- snippet: NAME -->`` in docs/integrations.md, pointed at
    ``url`` (replacing ``http://127.0.0.1:8000``) with ``key`` for ``rl_your_key``."""
    text = DOCS.read_text()
    found = re.search(rf"<!-- snippet: {re.escape(name)} -->\n```\w*\n(.*?)\n```", text, re.S)
    assert found, f"no snippet {name!r} in {DOCS}"
    code = found.group(1)
    if url:
        code = code.replace("http://127.0.0.1:8000", url)
    return code.replace("rl_your_key", key)

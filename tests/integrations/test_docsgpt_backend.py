"""DocsGPT's backend embedding through ragloop, with the documented ``.env`` settings.

DocsGPT's ``RemoteEmbeddings`` is not on PyPI, so its two requests are made here exactly as it
makes them: ``{"input", "model"}`` to ``{EMBEDDINGS_BASE_URL}/v1/embeddings`` with a Bearer
``EMBEDDINGS_KEY``, a bare string for a query and a list for documents, ``data`` read by
``index``.
"""

from __future__ import annotations

import httpx
import numpy as np

from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder
from tests.integrations.conftest import Live
from tests.integrations.live import snippet


def _remote_embeddings(env: dict[str, str], inputs: str | list[str]) -> list[list[float]]:
    headers = {"Content-Type": "application/json"}
    if env.get("EMBEDDINGS_KEY"):
        headers["Authorization"] = f"Bearer {env['EMBEDDINGS_KEY']}"
    payload: dict[str, object] = {"input": inputs}
    if env.get("EMBEDDINGS_NAME"):
        payload["model"] = env["EMBEDDINGS_NAME"]
    url = f"{env['EMBEDDINGS_BASE_URL'].rstrip('/')}/v1/embeddings"
    response = httpx.post(url, headers=headers, json=payload, timeout=180)
    response.raise_for_status()
    data = sorted(response.json()["data"], key=lambda x: x.get("index", 0))
    return [item["embedding"] for item in data]


def test_docsgpt_remote_embeddings_with_the_documented_env(live: Live) -> None:
    env = dict(
        line.split("=", 1) for line in snippet("docsgpt-env", live.url).splitlines() if "=" in line
    )
    embedder = KeywordEmbedder(DEFAULT_VOCAB)
    docs = ["A whale is an ocean animal.", "Bread needs flour and yeast.", "Magma and lava."]
    assert np.allclose(_remote_embeddings(env, docs), embedder.embed(docs), atol=1e-6)
    [query] = _remote_embeddings(env, "whale in the ocean")
    assert np.allclose(query, embedder.embed(["whale in the ocean"])[0], atol=1e-6)

"""Shared fixtures: settings in a temp data dir, runtimes with the fake or the real model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ragloop.core.runtime import Runtime, open_runtime
from ragloop.core.settings import Settings
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder, fake_registry

# A real PostgreSQL server: pg_server, pg_url, pg_empty_url, catalog_url, catalog,
# empty_catalog_url.
pytest_plugins = ("tests.pg_server",)


@pytest.fixture(autouse=True)
def _no_ragloop_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests build their own settings; a developer's RAGLOOP_* variables must not leak in.
    import os

    for key in list(os.environ):
        if key.startswith("RAGLOOP_") or key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # The default backend (auto) exports the model to ONNX and times it once per data dir,
    # which would cost every real-model test half a minute; tests/core/test_onnx_embedder.py
    # covers that path, the rest run on torch (the path auto falls back to).
    monkeypatch.setenv("RAGLOOP_BACKEND", "torch")


@pytest.fixture
def fake_embedder() -> KeywordEmbedder:
    return KeywordEmbedder(DEFAULT_VOCAB)


@pytest.fixture
def fake_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", embedder="fake-keyword", chunk_tokens=24, chunk_overlap=4
    )


@pytest.fixture
def fake_runtime(fake_settings: Settings, fake_embedder: KeywordEmbedder) -> Iterator[Runtime]:
    rt = open_runtime(fake_settings, registry=fake_registry(fake_embedder))
    yield rt
    rt.close()


@pytest.fixture
def fake_runtime_any(
    tmp_path: Path, catalog_url: str, fake_embedder: KeywordEmbedder
) -> Iterator[Runtime]:
    """``fake_runtime`` once with a SQLite catalog and once with a PostgreSQL one."""
    settings = Settings(
        data_dir=tmp_path / "data",
        embedder="fake-keyword",
        chunk_tokens=24,
        chunk_overlap=4,
        catalog_url=catalog_url,
    )
    rt = open_runtime(settings, registry=fake_registry(fake_embedder))
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    from ragloop.core.embedding.base import EmbedderOptions
    from ragloop.core.embedding.registry import default_registry

    return default_registry().load("all-MiniLM-L6-v2", EmbedderOptions())

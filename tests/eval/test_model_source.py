"""``--model`` resolves versions the way the service loads them, query-only ones included."""

import time
from pathlib import Path

import numpy as np

from ragloop.core.embedding.query_adapter import ADAPTER_FILE, QueryAdapterEmbedder
from ragloop.core.records import ModelVersion
from ragloop.core.runtime import Runtime
from ragloop.eval.evaluators import ModelSource
from tests.fakes import KeywordEmbedder, fake_registry


def test_query_only_version_loads_as_parent_plus_adapter(
    fake_runtime: Runtime, fake_embedder: KeywordEmbedder, tmp_path: Path
) -> None:
    base = fake_runtime.active_index()
    d = base.embedder.dimension
    np.save(tmp_path / ADAPTER_FILE, np.eye(d, dtype=np.float32)[::-1])
    fake_runtime.catalog.add_version(
        ModelVersion(
            "qa1",
            str(tmp_path),
            "base",
            d,
            66,
            base.collection,
            "retired",
            time.time(),
            {"kind": "query_adapter"},
        )
    )
    source = ModelSource(fake_runtime.settings, fake_registry(fake_embedder))
    try:
        emb = source.load("qa1")
        assert isinstance(emb, QueryAdapterEmbedder) and emb.parent is fake_embedder
        assert source.load("active") is fake_embedder  # base is still the active version
    finally:
        source.close()

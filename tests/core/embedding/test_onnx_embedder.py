"""The ONNX backend: export, quality against torch, caching, atomicity, and the backend choice."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from ragloop.core.embedding import backends, hardware, onnx_embedder
from ragloop.core.embedding.backends import load_model_dir, probe_texts
from ragloop.core.embedding.base import Embedder, EmbedderOptions
from ragloop.core.embedding.onnx_embedder import OnnxEmbedder, export_dir_for, load_onnx
from ragloop.core.embedding.registry import default_registry
from ragloop.core.embedding.torch_embedder import SentenceTransformerEmbedder, bundled_model_path
from ragloop.core.errors import ConfigError, ModelUnavailableError
from ragloop.core.settings import load_settings

pytestmark = pytest.mark.integration

TEXTS = [
    "What causes scurvy?",
    "a",
    "Vitamin C deficiency was common among sailors on long voyages without fresh citrus.",
    "Coral reefs grow slowly; warming water bleaches them and kills the algae. " * 30,
    "¿Dónde está la biblioteca? 42 °C, EUR 4.2m, `git rebase -i`",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-data")


@pytest.fixture(scope="module")
def torch_fp32() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(bundled_model_path(), EmbedderOptions(precision="fp32"))


@pytest.fixture(scope="module")
def onnx_fp32(data_dir: Path) -> OnnxEmbedder:
    return load_onnx(bundled_model_path(), "fp32", data_dir, "all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def onnx_int8(data_dir: Path, onnx_fp32: OnnxEmbedder) -> OnnxEmbedder:
    return load_onnx(bundled_model_path(), "int8", data_dir, "all-MiniLM-L6-v2")


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_fp32_export_matches_torch(torch_fp32: Embedder, onnx_fp32: OnnxEmbedder) -> None:
    got, want = onnx_fp32.embed(TEXTS), torch_fp32.embed(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert _cos(got, want).min() >= 0.9999
    # Order within a batch does not matter (inputs are sorted by length inside).
    assert np.allclose(onnx_fp32.embed(TEXTS[::-1])[::-1], got, atol=1e-5)
    assert onnx_fp32.embed([]).shape == (0, 384)
    # Both know the directory they came from (what fine-tuning starts from).
    assert onnx_fp32.source_dir == torch_fp32.source_dir == bundled_model_path()


def test_int8_keeps_its_threshold_on_every_probe(
    torch_fp32: Embedder, onnx_int8: OnnxEmbedder
) -> None:
    # The minimum, as the automatic choice checks it: the mean passed long before the minimum.
    texts = probe_texts()
    cos = _cos(onnx_int8.embed(texts), torch_fp32.embed(texts))
    assert cos.min() >= backends.THRESHOLDS["onnx-int8"]
    assert onnx_int8.onnx_path.name == "model.int8.onnx"


def test_int8_quantizes_linear_layers_but_not_embeddings_or_early_ffn_outputs(
    onnx_int8: OnnxEmbedder,
) -> None:
    import onnx

    nodes = onnx.load(str(onnx_int8.onnx_path)).graph.node
    integer = [n.name for n in nodes if n.op_type == "MatMulInteger"]
    fp32_linear = [n.name for n in nodes if n.op_type == "MatMul" and "/self/MatMul" not in n.name]
    assert fp32_linear == [f"/st/st.0/encoder/layer.{i}/output/dense/MatMul" for i in range(3)]
    # six linear layers per block (q, k, v, attention out, FFN in, FFN out), less three
    assert len(integer) == 6 * 6 - 3
    # embedding tables stay fp32: a quantized table would be read through DequantizeLinear
    assert not [n for n in nodes if n.op_type == "DequantizeLinear"]


def test_int8_keeps_the_first_half_of_ffn_outputs_by_name() -> None:
    names = [
        f"/m/encoder/layer.{i}/{part}/MatMul"
        for i in range(7)
        for part in ("attention/output/dense", "intermediate/dense", "output/dense")
    ]
    kept = onnx_embedder.int8_fp32_nodes(names)
    assert kept == [f"/m/encoder/layer.{i}/output/dense/MatMul" for i in range(4)]
    assert onnx_embedder.int8_fp32_nodes(["/other/MatMul"]) == []


def test_same_tokenizer_limits(torch_fp32: Embedder, onnx_fp32: OnnxEmbedder) -> None:
    assert onnx_fp32.count_tokens(TEXTS) == torch_fp32.count_tokens(TEXTS)
    assert onnx_fp32.count_tokens([]) == []
    hf = torch_fp32.tokenizer  # type: ignore[attr-defined]
    assert onnx_fp32.tokenizer(TEXTS[2])["input_ids"] == hf(TEXTS[2])["input_ids"]
    assert (onnx_fp32.max_seq_length, onnx_fp32.special_tokens, onnx_fp32.dimension) == (
        torch_fp32.max_seq_length,
        torch_fp32.special_tokens,
        torch_fp32.dimension,
    )


def test_thread_safe(onnx_fp32: OnnxEmbedder) -> None:
    want = onnx_fp32.embed(TEXTS)
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(onnx_fp32.embed(TEXTS))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(np.allclose(r, want, atol=1e-5) for r in results)


def test_export_is_cached_and_tmp_leftovers_ignored(
    data_dir: Path, onnx_fp32: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    export_dir = export_dir_for(bundled_model_path(), data_dir)
    assert onnx_fp32.onnx_path.parent == export_dir and export_dir.parent == data_dir / "onnx"
    # A crashed export leaves only a temporary name behind; it is never loaded.
    (export_dir / ".model.fp32.onnx.999.dead.tmp").write_bytes(b"half a model")

    def no_export(*_a: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_embedder, "_export_fp32", no_export)
    again = load_onnx(bundled_model_path(), "fp32", data_dir, "x")
    assert np.allclose(again.embed(TEXTS[:2]), onnx_fp32.embed(TEXTS[:2]), atol=1e-6)


def test_half_written_export_is_redone(tmp_path: Path, onnx_fp32: OnnxEmbedder) -> None:
    # Without the final file (only a tmp), the next load exports afresh instead of loading it.
    export_dir = export_dir_for(bundled_model_path(), tmp_path)
    export_dir.mkdir(parents=True)
    (export_dir / ".model.fp32.onnx.1.abcd.tmp").write_bytes(b"\x00" * 100)
    emb = load_onnx(bundled_model_path(), "fp32", tmp_path, "x")
    assert _cos(emb.embed(TEXTS[:2]), onnx_fp32.embed(TEXTS[:2])).min() >= 0.99999
    assert (export_dir / "model.fp32.onnx").is_file()


def test_settings_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="int8 runs only on ONNX Runtime"):
        load_settings(backend="torch", precision="int8")
    with pytest.raises(ConfigError, match="bf16 is a torch path"):
        load_settings(backend="onnx", precision="bf16")
    with pytest.raises(ConfigError, match="RAGLOOP_BACKEND"):
        load_settings(backend="tensorrt")
    s = load_settings(backend="onnx", precision="int8")
    opts = EmbedderOptions.from_settings(s)
    assert (opts.backend, opts.precision, opts.data_dir) == ("onnx", "int8", s.data_dir)
    monkeypatch.delenv("RAGLOOP_BACKEND")  # conftest pins torch for the other tests
    assert load_settings().backend == "auto"


def test_explicit_backends_load_what_they_name(data_dir: Path, onnx_int8: OnnxEmbedder) -> None:
    reg = default_registry()
    emb = reg.load("all-MiniLM-L6-v2", EmbedderOptions("cpu", "int8", "onnx", data_dir))
    assert isinstance(emb, OnnxEmbedder) and emb.precision == "int8"
    assert emb.model_id == "all-MiniLM-L6-v2"
    torch_emb = reg.load("all-MiniLM-L6-v2", EmbedderOptions("cpu", "fp32", "auto", data_dir))
    assert isinstance(torch_emb, SentenceTransformerEmbedder)  # auto + fp32: the reference
    with pytest.raises(ConfigError, match="int8 runs only on the ONNX backend"):
        load_model_dir(bundled_model_path(), EmbedderOptions("cpu", "int8", "torch"))


def test_auto_picks_a_passing_path_and_caches_it(
    data_dir: Path,
    onnx_int8: OnnxEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ragloop.core.embedding.backends")
    monkeypatch.setattr(backends, "probe_texts", lambda: probe_texts()[::4])  # keep it short
    opts = EmbedderOptions("cpu", "auto", "auto", data_dir)
    emb = default_registry().load("all-MiniLM-L6-v2", opts)
    files = list(export_dir_for(bundled_model_path(), data_dir).glob("auto-*.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    chosen = next(t for t in record["trials"] if t["path"] == record["choice"])
    assert chosen["passes"] and chosen["cosine_min"] >= backends.THRESHOLDS[record["choice"]]
    # fixed order, first passing path wins (no timing race between paths)
    passing = [t["path"] for t in record["trials"][1:] if t["passes"]]
    assert record["choice"] == (passing[0] if passing else "torch-fp32")
    assert any("chose" in r.message for r in caplog.records)
    assert record["choice"].startswith("onnx") == isinstance(emb, OnnxEmbedder)
    # The second start reads the decision instead of measuring again.
    monkeypatch.setattr(backends, "_time", lambda *_a: pytest.fail("measured again"))
    again = default_registry().load("all-MiniLM-L6-v2", opts)
    assert type(again) is type(emb)
    assert emb.embed(TEXTS[:1]).shape == (1, 384)


def test_auto_falls_back_to_torch_and_explicit_onnx_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_a: object) -> None:
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(onnx_embedder, "_export_fp32", broken)
    # Without native bf16, auto tries ONNX first: the path whose failure this test is about.
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(backends, "_time", lambda emb, texts: (emb.embed(texts[:4]), 1.0))
    monkeypatch.setattr(backends, "probe_texts", lambda: TEXTS[:4])
    auto = load_model_dir(bundled_model_path(), EmbedderOptions("cpu", "auto", "auto", tmp_path))
    assert isinstance(auto, SentenceTransformerEmbedder)
    with pytest.raises(ModelUnavailableError, match=r"cannot export .*exporter exploded"):
        load_model_dir(bundled_model_path(), EmbedderOptions("cpu", "fp32", "onnx", tmp_path))


def test_version_dirs_export_beside_their_weights(tmp_path: Path) -> None:
    import shutil

    version = tmp_path / "models" / "v1"
    shutil.copytree(bundled_model_path(), version)
    where = export_dir_for(version, tmp_path)
    assert where.parent == version / "onnx"
    # The loop's reports land in the version dir after the worker loaded the candidate.
    (version / "gate.json").write_text("{}")
    (version / "training.json").write_text("{}")
    assert export_dir_for(version, tmp_path) == where
    (version / "config.json").write_text((version / "config.json").read_text() + " ")
    assert export_dir_for(version, tmp_path) != where  # a model file changed: a new export

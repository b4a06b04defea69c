"""Each loss, LoRA and the query adapter on tiny runs with the real bundled model."""

from pathlib import Path

import numpy as np
import pytest

from ragloop.core.embedding.base import EmbedderOptions
from ragloop.core.embedding.query_adapter import ADAPTER_FILE, QueryAdapterEmbedder
from ragloop.core.embedding.torch_embedder import SentenceTransformerEmbedder, bundled_model_path
from ragloop.finetune.options import RetrainOptions
from ragloop.finetune.trainer import build_dataset, train_full, train_query_adapter

pytestmark = pytest.mark.integration

ROWS = [
    {
        "anchor": f"What does gene {g} do in mice?",
        "positive": f"Gene {g} controls growth of bone cells in mice.",
        "negative": f"The stock market of {g} fell sharply on Monday.",
    }
    for g in ("ABC1", "XYZ2", "KLM3", "PQR4", "DEF5", "GHI6", "JKL7", "MNO8")
]


def _train(tmp_path: Path, **options: object) -> tuple[dict, Path]:  # type: ignore[type-arg]
    from sentence_transformers import SentenceTransformer

    base = str(bundled_model_path())
    model = SentenceTransformer(base, device="cpu", local_files_only=True)
    out = tmp_path / "model"
    opts = RetrainOptions(epochs=1, batch_size=4, learning_rate=1e-4, **options)  # type: ignore[arg-type]
    stats = train_full(model, ROWS, opts, out, base, False, lambda frac, msg, loss: False)
    return stats, out


@pytest.mark.parametrize("loss", ["mnrl", "matryoshka", "triplet", "online-contrastive", "tsdae"])
def test_each_loss_trains_and_saves_a_loadable_model(tmp_path: Path, loss: str) -> None:
    stats, out = _train(tmp_path, loss=loss, matryoshka_dims=[384, 128])
    assert stats["steps"] >= 1 and np.isfinite(stats["train_loss"])
    tuned = SentenceTransformerEmbedder(out, EmbedderOptions(precision="fp32"))
    base = SentenceTransformerEmbedder(bundled_model_path(), EmbedderOptions(precision="fp32"))
    text = ["Gene ABC1 controls growth of bone cells in mice."]
    assert tuned.dimension == 384
    assert not np.allclose(tuned.embed_documents(text), base.embed_documents(text), atol=1e-6)


def test_lora_is_merged_into_plain_weights(tmp_path: Path) -> None:
    stats, out = _train(tmp_path, lora=True)
    assert stats["steps"] >= 1
    assert not list(out.glob("adapter_config.json"))  # serving needs no peft
    tuned = SentenceTransformerEmbedder(out, EmbedderOptions(precision="fp32"))
    base = SentenceTransformerEmbedder(bundled_model_path(), EmbedderOptions(precision="fp32"))
    text = ["What does gene XYZ2 do in mice?"]
    cos = float(tuned.embed_query(text[0]) @ base.embed_query(text[0]))
    assert 0.9 < cos < 0.999999  # moved, but only a little: low-rank updates


def test_dataset_shapes_per_loss() -> None:
    assert build_dataset(ROWS, "mnrl", 0).column_names == ["anchor", "positive", "negative"]
    assert build_dataset(ROWS, "online-contrastive", 0).num_rows == 16
    assert build_dataset(ROWS, "tsdae", 0).column_names == ["damaged", "original"]
    no_neg = [{"anchor": r["anchor"], "positive": r["positive"]} for r in ROWS]
    assert build_dataset(no_neg, "mnrl", 0).column_names == ["anchor", "positive"]


def test_mnrl_keeps_hard_negatives_when_some_rows_have_none() -> None:
    # The miner finds a negative for most pairs, not all: the mined ones must reach the loss,
    # and a row without one gets another row's positive (never its own).
    rows = [
        {"anchor": f"q{i}", "positive": f"p{i}", "positive_id": f"c{i}", "source": "labelled"}
        | ({"negative": f"n{i}", "negative_id": f"x{i}"} if i % 4 else {})
        for i in range(12)
    ]
    ds = build_dataset(rows, "mnrl", 0)  # type: ignore[arg-type]
    assert ds.column_names == ["anchor", "positive", "negative"]
    for i, neg in enumerate(ds["negative"]):
        if i % 4:
            assert neg == f"n{i}"
        else:
            assert neg.startswith("p") and neg != f"p{i}"


def test_query_adapter_learns_a_mapping(tmp_path: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    d = 16
    docs = rng.normal(size=(64, d)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    # queries are a distorted copy of their documents: a fixed linear map the adapter can undo
    distort = (np.eye(d) + 0.9 * rng.normal(size=(d, d))).astype(np.float32)
    queries = docs @ distort.T
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    before = np.mean(np.argmax(queries @ docs.T, axis=1) == np.arange(64))
    opts = RetrainOptions(query_only=True, epochs=20, batch_size=8)
    train_query_adapter(queries, docs, None, opts, tmp_path, lambda frac, msg, loss: False)
    w = np.load(tmp_path / ADAPTER_FILE)
    adapted = queries @ w.T
    after = np.mean(np.argmax(adapted @ docs.T, axis=1) == np.arange(64))
    assert after > before + 0.3


def test_query_adapter_embedder_only_touches_queries(real_embedder) -> None:  # type: ignore[no-untyped-def]
    w = np.eye(384, dtype=np.float32)[::-1]  # reverse the components
    emb = QueryAdapterEmbedder(real_embedder, w, "qa")
    text = ["Gene ABC1 controls growth."]
    assert np.allclose(emb.embed_documents(text), real_embedder.embed_documents(text))
    q = emb.embed_query(text[0])
    assert np.allclose(q, real_embedder.embed_query(text[0])[::-1], atol=1e-5)


def test_attention_dropout_is_switched_off_for_training_only() -> None:
    from sentence_transformers import SentenceTransformer

    from ragloop.finetune.trainer import set_attention_dropout

    model = SentenceTransformer(str(bundled_model_path()), device="cpu", local_files_only=True)
    auto = model[0].auto_model
    before = auto.config.attention_probs_dropout_prob
    undo = set_attention_dropout(model, 0.0)
    probs = {n: m.p for n, m in auto.named_modules() if n.endswith("attention.self.dropout")}
    hidden = {n: m.p for n, m in auto.named_modules() if n.endswith("output.dropout")}
    assert len(probs) == 6 and set(probs.values()) == {0.0}  # one per layer
    assert hidden and set(hidden.values()) == {0.1}  # hidden-state dropout stays
    assert auto.config.attention_probs_dropout_prob == 0.0
    undo()
    assert auto.config.attention_probs_dropout_prob == before == 0.1  # the saved config
    assert set_attention_dropout(model, None)() is None  # None leaves the model alone

"""LangChain against a live ragloop: the documented LCEL chain, the retriever, embeddings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableLambda

from ragloop.core import runtime as runtime_module
from ragloop.core.errors import AuthError, InvalidInputError
from ragloop.integrations.langchain import RagloopEmbeddings, RagloopRetriever
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder, fake_registry
from tests.integrations.conftest import Live
from tests.integrations.live import KEY, snippet


def test_the_documented_lcel_chain(live: Live) -> None:
    # The "chat model" echoes its prompt, so the answer shows what the retriever put in it.
    echo = RunnableLambda(
        lambda prompt: prompt.to_string() if isinstance(prompt, PromptValue) else ""
    )
    scope: dict[str, object] = {"llm": echo}
    exec(snippet("langchain", live.url), scope)
    answer = scope["answer"]
    assert isinstance(answer, str)
    assert "Question: What causes scurvy?" in answer
    assert "[Scurvy]" in answer and "vitamin C causes scurvy" in answer
    assert len(scope["query_vector"]) == len(DEFAULT_VOCAB) + 1  # type: ignore[arg-type]


def test_retriever_documents_and_async(live: Live) -> None:
    retriever = RagloopRetriever(base_url=live.url, api_key=KEY, k=2)
    docs = retriever.invoke("volcano lava")
    assert len(docs) == 2
    top = docs[0]
    assert top.metadata["title"] == "volcano" and "lava" in top.page_content
    assert top.id == top.metadata["chunk_id"] and top.metadata["score"] > docs[1].metadata["score"]
    assert top.metadata["source"].endswith("volcano.txt")
    again = asyncio.run(retriever.ainvoke("volcano lava"))
    assert [d.id for d in again] == [d.id for d in docs]
    # searches are not answers, so they are not logged as queries
    assert all(q.question != "volcano lava" for q in live.querylog.find(limit=1000)[0])


def test_retriever_errors_carry_the_server_message(live: Live) -> None:
    with pytest.raises(AuthError, match="Invalid API key"):
        RagloopRetriever(base_url=live.url, api_key="wrong").invoke("whale")
    with pytest.raises(InvalidInputError, match="question is empty"):
        RagloopRetriever(base_url=live.url, api_key=KEY).invoke("   ")


def test_embeddings_remote_and_local_agree(
    live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = ["whale ocean", "citrus vitamin scurvy"]
    expected = KeywordEmbedder(DEFAULT_VOCAB).embed(texts)
    remote = RagloopEmbeddings(live.url, api_key=KEY, batch_size=1)
    assert np.allclose(remote.embed_documents(texts), expected, atol=1e-6)
    assert np.allclose(remote.embed_query(texts[0]), expected[0], atol=1e-6)
    assert remote.embed_documents([]) == []

    # from_data_dir with RAGLOOP_* settings, as a user would; the fake stands in for the model.
    monkeypatch.setattr(runtime_module, "default_registry", lambda: fake_registry())
    monkeypatch.setenv("RAGLOOP_EMBEDDER", "fake-keyword")
    local = RagloopEmbeddings.from_data_dir(tmp_path / "data")
    try:
        assert np.allclose(local.embed_documents(texts), expected, atol=1e-6)
        assert np.allclose(local.embed_query(texts[1]), expected[1], atol=1e-6)
    finally:
        local.close()
    with pytest.raises(InvalidInputError, match="exactly one"):
        RagloopEmbeddings()

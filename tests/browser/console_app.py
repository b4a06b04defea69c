"""A live ragloop for the console's browser test: the bundled model, the extractive generator,
an admin token, the sample corpus and a small gate dataset, served by uvicorn on loopback; the
Chromium to drive, and axe-core to audit its pages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from ragloop.core.embedding.backends import load_model_dir
from ragloop.core.embedding.base import Embedder, EmbedderRegistry
from ragloop.core.runtime import Runtime, open_runtime
from ragloop.core.settings import DEFAULT_EMBEDDER, Settings
from ragloop.core.storage.querylog import QueryLog
from ragloop.eval.datasets import load_beir
from ragloop.finetune.imports import import_beir_pairs
from ragloop.ingest.pipeline import Ingestor
from ragloop.service.app import create_app, default_generator_factory
from tests.browser.chromium import CHROMIUM
from tests.ingest.samples import write_corpus
from tests.integrations.live import serve

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "console"
ADMIN_TOKEN = "rl_console_admin_token"
#: axe-core from npm (tests/browser/package-lock.json), installed by scripts/install_browser.sh.
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
#: The gate dataset's folder name under the app's gate datasets root (what the form names).
GATE_SET = "support"


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium (``scripts/install_browser.sh``); skip when it cannot be had."""
    if not Path(CHROMIUM).exists():
        import subprocess

        subprocess.run(["bash", str(ROOT / "scripts" / "install_browser.sh")], check=False)
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium could not be installed (scripts/install_browser.sh needs apt)")
    return CHROMIUM


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core's browser bundle; skip when npm cannot install it."""
    if not AXE.exists():
        import subprocess

        subprocess.run(["bash", str(ROOT / "scripts" / "install_browser.sh")], check=False)
    if not AXE.exists():
        pytest.skip("axe-core could not be installed (scripts/install_browser.sh needs npm)")
    return AXE.read_text()


#: Documents with titles and headings of several words: the gate's held-out questions come from
#: such names, so a retrain on this small corpus has enough of them to train and be judged.
TOPICS = {
    "Ocean tides and the moon": {
        "Why tides rise twice a day": "The moon pulls the oceans; the earth turns beneath "
        "two bulges of water, so most coasts see two high tides daily.",
        "Spring and neap tides": "When sun and moon align, tides are largest.",
    },
    "How bread dough rises": {
        "Yeast makes gas": "Yeast eats sugar and releases carbon dioxide that inflates dough.",
        "Kneading builds gluten": "Kneading stretches gluten into a net that traps the gas.",
    },
    "Volcanic eruptions explained": {
        "Magma chambers under pressure": "Gas-rich magma collects below a volcano until "
        "pressure breaks the rock above.",
        "Lava flows and ash clouds": "Runny lava flows far; sticky magma explodes into ash.",
    },
    "Life on coral reefs": {
        "Coral polyps and algae": "Reef corals host algae that feed them through sunlight.",
        "Fish that clean other fish": "Cleaner wrasse eat parasites off larger reef fish.",
    },
    "Steam locomotives on rail lines": {
        "Boilers and pistons": "A coal fire boils water; steam drives pistons that turn wheels.",
        "Laying railway track": "Rails rest on sleepers bedded in crushed stone ballast.",
    },
    "Citrus fruit and vitamin C": {
        "Oranges lemons and limes": "Citrus fruits are rich in vitamin C.",
        "Sailors and limes": "British sailors drank lime juice to prevent scurvy.",
    },
}


def write_topics(root: Path) -> Path:
    """Markdown documents of ``TOPICS`` (a title, then sections)."""
    root.mkdir(parents=True, exist_ok=True)
    for n, (title, sections) in enumerate(TOPICS.items()):
        body = "".join(f"## {h}\n\n{text}\n\n" for h, text in sections.items())
        (root / f"topic{n}.md").write_text(f"# {title}\n\n{body}")
    return root


#: A support team's resolved questions, by the ``TOPICS`` document that answers them. For
#: each the base model ranks the sample corpus's short page on the same subject first (the
#: volcano, coral reef, rail, bread and scurvy pages), though the longer document answers it
#: better.
RESOLVED = {
    "Volcanic eruptions explained": ["What makes volcanoes erupt?", "Why does a volcano blow up?"],
    "Life on coral reefs": [
        "What lives on coral reefs?",
        "What animals are found on coral reefs?",
    ],
    "Steam locomotives on rail lines": [
        "How is a train track built?",
        "How are railway lines constructed?",
    ],
    "How bread dough rises": ["How does yeast make bread rise?"],
    "Citrus fruit and vitamin C": ["Which fruit prevents scurvy?"],
}
#: Other questions, none of them trained on, to gate a retrain on: the base model ranks the
#: short page first for six of the twelve (dense nDCG@10 0.815). Retrains on ``RESOLVED`` and
#: the synthetic pairs reached 0.938 to 1.0 on them in trials on two CPU cores (4 epochs,
#: batch 4, learning rate 1e-4; also 2 epochs, batch 8, 5e-5), far above the default margin.
GATE_QUESTIONS = {
    "Volcanic eruptions explained": [
        "Why do volcanoes explode?",
        "Where does magma come from?",
        "What makes a volcano explosive?",
    ],
    "Life on coral reefs": ["Which creatures live on a coral reef?", "What do reef corals eat?"],
    "Steam locomotives on rail lines": [
        "What holds railway rails in place?",
        "What are rails laid on?",
        "What drives a steam locomotive?",
    ],
    "How bread dough rises": ["What makes bread light and airy?", "Why does dough need kneading?"],
    "Ocean tides and the moon": [
        "What causes high and low tides?",
        "What happens to the sea when the moon pulls it?",
    ],
}


def write_support_set(root: Path, rt: Runtime) -> Path:
    """A BEIR dataset over the served documents: ``RESOLVED`` as its ``train`` split (imported
    as labelled pairs, as ``ragloop pairs import`` does), ``GATE_QUESTIONS`` as ``test`` (what
    a retrain may be gated on: questions it did not train on)."""
    folder = root / GATE_SET
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    chunks = [c for batch in rt.catalog.iter_chunks(5000) for c in batch]
    documents = rt.catalog.list_documents(limit=1000)
    ids = {d.title: d.id for d in documents}
    with (folder / "corpus.jsonl").open("w") as fh:
        for d in documents:
            text = "\n\n".join(c.text for c in chunks if c.document_id == d.id)
            fh.write(json.dumps({"_id": d.id, "title": d.title, "text": text}) + "\n")
    queries: dict[str, str] = {}
    for split, questions in (("train", RESOLVED), ("test", GATE_QUESTIONS)):
        rows = []
        for title, asked in questions.items():
            for question in asked:
                qid = f"q{len(queries)}"
                queries[qid] = question
                rows.append(f"{qid}\t{ids[title]}\t1\n")
        (folder / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(rows)
        )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items())
    )
    return folder


def console_app(root: Path, embedder: Embedder) -> FastAPI:
    """The real app over the sample corpus and ``TOPICS`` (no API key: the chat page is
    open to anyone), with ``GATE_SET`` under its gate datasets root. The bundled model is the
    one already loaded; a fine-tuned version loads from its directory."""
    registry = EmbedderRegistry()
    registry.register(DEFAULT_EMBEDDER, lambda _options: embedder)
    registry.set_path_loader(load_model_dir)
    settings = Settings(
        data_dir=root / "data",
        generator="extractive",
        admin_token=ADMIN_TOKEN,
        gate_datasets_root=root / "gate-datasets",
        # Dense: the gate compares the two models' own rankings. Fused with BM25 (hybrid), the
        # lexical half of these short pages' scores outweighs what a fine-tune moves here.
        # (The training worker reads RAGLOOP_RETRIEVAL: ``live_console`` sets it too.)
        retrieval="dense",
    )
    rt = open_runtime(settings, registry=registry)
    try:
        Ingestor(rt).ingest([write_corpus(root / "docs"), write_topics(root / "topics")])
        support = write_support_set(root / "gate-datasets", rt)
        report = import_beir_pairs(rt, QueryLog(rt.catalog.engine), load_beir(support, "train"))
        assert report.pairs_added == sum(len(q) for q in RESOLVED.values()), report
    finally:
        rt.close()
    return create_app(settings, registry=registry, generator_factory=default_generator_factory)


@pytest.fixture
def live_console(
    tmp_path: Path, real_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FastAPI, str]]:
    """The app and its base URL while it serves. A retrain's worker process reads its settings
    from the environment, as a deployment's does: it gates with the retrieval the app serves."""
    monkeypatch.setenv("RAGLOOP_RETRIEVAL", "dense")
    app = console_app(tmp_path, real_embedder)
    with serve(app) as url:
        yield app, url

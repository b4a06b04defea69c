"""A live ragloop for the console's browser test: the bundled model, the extractive generator,
an admin token, the sample corpus, served by uvicorn on loopback; and the Chromium to drive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from ragloop.core.embedding.base import Embedder, EmbedderRegistry
from ragloop.core.runtime import open_runtime
from ragloop.core.settings import DEFAULT_EMBEDDER, Settings
from ragloop.ingest.pipeline import Ingestor
from ragloop.service.app import create_app, default_generator_factory
from tests.ingest.samples import write_corpus
from tests.integrations.live import serve

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "console"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling home on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_TOKEN = "rl_console_admin_token"


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium (``scripts/install_browser.sh``); skip when it cannot be had."""
    if not Path(CHROMIUM).exists():
        import subprocess

        subprocess.run(["bash", str(ROOT / "scripts" / "install_browser.sh")], check=False)
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium could not be installed (scripts/install_browser.sh needs apt)")
    return CHROMIUM


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


def console_app(root: Path, embedder: Embedder) -> FastAPI:
    """The real app over the sample corpus and ``TOPICS`` (no API key: the chat page is
    open to anyone)."""
    registry = EmbedderRegistry()
    registry.register(DEFAULT_EMBEDDER, lambda _options: embedder)
    settings = Settings(data_dir=root / "data", generator="extractive", admin_token=ADMIN_TOKEN)
    rt = open_runtime(settings, registry=registry)
    Ingestor(rt).ingest([write_corpus(root / "docs"), write_topics(root / "topics")])
    rt.close()
    return create_app(settings, registry=registry, generator_factory=default_generator_factory)


@pytest.fixture
def live_console(tmp_path: Path, real_embedder: Embedder) -> Iterator[tuple[FastAPI, str]]:
    """The app and its base URL while it serves."""
    app = console_app(tmp_path, real_embedder)
    with serve(app) as url:
        yield app, url

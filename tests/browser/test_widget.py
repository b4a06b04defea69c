"""DocsGPT's chat widget (npm ``docsgpt``) in headless Chromium, answered by a live ragloop.

The page is the documented snippet, served from another loopback port than ragloop (so the
browser enforces CORS), with the widget bundle from ``tests/browser/node_modules``. The server
runs the bundled model and the extractive generator. Chromium and the widget are installed by
``scripts/install_browser.sh`` (``make test`` runs it; this test runs it when they are missing).
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ragloop.core.answering import QueryRequest
from ragloop.core.embedding.base import Embedder, EmbedderRegistry
from ragloop.core.runtime import open_runtime
from ragloop.core.settings import DEFAULT_EMBEDDER, Settings
from ragloop.ingest.pipeline import Ingestor
from ragloop.service.app import create_app, default_generator_factory
from tests.browser.chromium import CHROMIUM, open_page
from tests.ingest.samples import write_corpus
from tests.integrations.live import KEY, serve, snippet
from tests.system.helpers import free_port

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUNDLE = HERE / "node_modules" / "docsgpt" / "dist" / "legacy" / "browser.js"
# The widget's default avatar and button icon live on a CDN; a failed avatar makes it retry the
# same URL forever, so non-loopback images get this instead (everything else is refused).
ICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">'
    b'<circle cx="12" cy="12" r="10" fill="#6D42C5"/></svg>'
)


@pytest.fixture(scope="module")
def browser_ready() -> None:
    """Install Chromium and the widget when missing; skip only if Chromium cannot be had."""
    if not (shutil.which("chromium") and BUNDLE.exists()):
        subprocess.run(["bash", str(ROOT / "scripts" / "install_browser.sh")], check=False)
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "Chromium could not be installed (scripts/install_browser.sh needs apt as root)"
        )
    assert BUNDLE.exists(), (
        "npm did not install the docsgpt widget (see scripts/install_browser.sh)"
    )


@pytest.fixture
def ragloop_app(tmp_path: Path, real_embedder: Embedder) -> Any:
    """The real app: bundled model, extractive answers, an API key, CORS for the page."""
    registry = EmbedderRegistry()
    registry.register(DEFAULT_EMBEDDER, lambda _options: real_embedder)
    page_port = free_port()
    settings = Settings(
        data_dir=tmp_path / "data",
        generator="extractive",
        api_keys=KEY,
        cors_origins=f"http://127.0.0.1:{page_port}",
    )
    rt = open_runtime(settings, registry=registry)
    Ingestor(rt).ingest([write_corpus(tmp_path / "docs")])
    rt.close()
    app = create_app(settings, registry=registry, generator_factory=default_generator_factory)
    app.state.page_port = page_port
    return app


@pytest.fixture
def page_url(ragloop_app: Any) -> Iterator[str]:
    """ragloop on one port, the documented page on another."""
    with serve(ragloop_app) as api_url:
        html = snippet("widget-html", api_url).encode()

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/index.html":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(html)))
                    self.end_headers()
                    self.wfile.write(html)
                else:
                    super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        port = ragloop_app.state.page_port
        server = ThreadingHTTPServer(
            ("127.0.0.1", port), functools.partial(Handler, directory=HERE)
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{port}/index.html"
        finally:
            server.shutdown()
            server.server_close()


def _offline(route: Any) -> None:
    if route.request.url.startswith("http://127.0.0.1:"):
        route.continue_()
    elif route.request.resource_type == "image":
        route.fulfill(status=200, content_type="image/svg+xml", body=ICON)
    else:
        route.abort()


@contextmanager
def _widget(tmp_path: Path, page_url: str, problems: list[str]) -> Iterator[Any]:
    """The test page in Chromium, offline but for loopback, with the widget's chat opened."""
    from playwright.sync_api import sync_playwright

    with (
        sync_playwright() as pw,
        open_page(pw, tmp_path / "chromium-profile", 760, 760, problems) as page,
    ):
        page.route("**/*", _offline)
        page.goto(page_url)
        page.get_by_text("Ask a question").click()
        yield page


def test_widget_answers_shows_sources_and_logs_a_dislike(
    browser_ready: None, ragloop_app: Any, page_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    problems: list[str] = []
    with _widget(tmp_path, page_url, problems) as page:
        page.get_by_placeholder("Ask your question").fill("What causes scurvy?")
        with page.expect_response(lambda r: r.url.endswith("/stream")) as streamed:
            page.get_by_placeholder("Ask your question").press("Enter")
        body = streamed.value.text()

        # the streamed answer and its sources, as the widget renders them
        expect(page.get_by_text("vitamin C", exact=False).first).to_be_visible(timeout=60_000)
        expect(page.locator("a[title='Scurvy']")).to_be_visible()
        assert (
            page.locator("a[title='Scurvy']")
            .get_attribute("href", timeout=5_000)
            .endswith("scurvy.md")
        )

        # what came over the wire: DocsGPT's framing, answer deltas, the conversation id
        events = [json.loads(b.removeprefix("data: ")) for b in body.strip().split("\n\n")]
        assert all(b.startswith("data: ") for b in body.strip().split("\n\n"))
        kinds = [e["type"] for e in events]
        assert kinds[0] == "source" and kinds[-2:] == ["id", "end"]
        assert set(kinds[1:-2]) == {"answer"}
        streamed_answer = "".join(e["answer"] for e in events if e["type"] == "answer")
        conversation_id = events[-2]["id"]

        # thumbs down: the buttons show on hover; the second one is "dislike"
        answer = page.locator("div", has_text="vitamin C").last
        answer.hover()
        feedback = page.locator("button[style*='background-color: transparent']")
        with page.expect_response(lambda r: r.url.endswith("/api/feedback")) as sent:
            feedback.nth(1).click()
        assert sent.value.status == 200 and sent.value.json() == {"success": True}
        sent_body = json.loads(sent.value.request.post_data or "{}")
        assert sent_body["feedback"] == "DISLIKE" and sent_body["api_key"] == KEY
        assert sent_body["conversation_id"] == conversation_id

        artifacts = ROOT / "artifacts"
        artifacts.mkdir(exist_ok=True)
        page.wait_for_timeout(300)  # let the dislike icon's colour settle for the picture
        page.screenshot(path=str(artifacts / "widget.png"))

    querylog = ragloop_app.state.rl.querylog
    [logged], _ = querylog.find(limit=10)
    assert logged.question == "What causes scurvy?"
    assert logged.answer == streamed_answer.strip() and "vitamin C" in logged.answer
    assert logged.conversation_id == conversation_id
    assert logged.client == "env-0"  # the widget's apiKey reached ragloop
    assert logged.miss and "negative_feedback" in logged.miss_reasons
    misses, _ = querylog.find(reason="negative_feedback")
    assert [m.id for m in misses] == [logged.id]
    assert not problems, problems


def _stream_events(body: str) -> list[dict[str, Any]]:
    return [json.loads(b.removeprefix("data: ")) for b in body.strip().split("\n\n")]


def test_widget_follow_up_gets_sources_about_the_earlier_topic(
    browser_ready: None, ragloop_app: Any, page_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    problems: list[str] = []
    with _widget(tmp_path, page_url, problems) as page:
        box = page.get_by_placeholder("Ask your question")
        box.fill("What erupts from a volcano?")
        with page.expect_response(lambda r: r.url.endswith("/stream")) as first:
            box.press("Enter")
        first_events = _stream_events(first.value.text())
        expect(page.get_by_text("erupts lava", exact=False).first).to_be_visible(timeout=60_000)
        expect(page.locator("a[title='volcano']")).to_have_count(1)

        # "it" is the volcano: asked alone, this question's best source is about scurvy
        # (whose text says what "causes" it); in the conversation it is the volcano's.
        box.fill("What causes it?")
        with page.expect_response(lambda r: r.url.endswith("/stream")) as second:
            box.press("Enter")
        events = _stream_events(second.value.text())
        sent = json.loads(second.value.request.post_data or "{}")
        expect(page.locator("a[title='volcano']")).to_have_count(2, timeout=60_000)
        expect(page.get_by_text("erupts lava", exact=False)).to_have_count(2)

    # The widget sent the first turn as history, in the same conversation.
    assert sent["question"] == "What causes it?"
    history = json.loads(sent["history"])
    assert history[0]["prompt"] == "What erupts from a volcano?"
    assert "erupts lava" in history[0]["response"]
    assert sent["conversation_id"] == first_events[-2]["id"] == events[-2]["id"]
    [sources] = [e["source"] for e in events if e["type"] == "source"]
    assert sources[0]["title"] == "volcano" and sources[0]["source"].endswith("volcano.txt")
    answer = "".join(e["answer"] for e in events if e["type"] == "answer")
    assert "volcano" in answer.lower()

    # The query log keeps the stand-alone question it retrieved with, and what was typed.
    follow_up, _ = ragloop_app.state.rl.querylog.find(limit=1)
    [logged] = follow_up
    assert logged.raw_question == "What causes it?"
    assert logged.question.startswith("What causes it (") and "volcano" in logged.question
    assert logged.conversation_id == sent["conversation_id"]
    asked_alone = ragloop_app.state.rl.answerer.retrieve(
        QueryRequest(question="What causes it?", k=5)
    )[1]
    assert asked_alone[0].source.endswith("scurvy.md")  # what the rewrite saved it from
    assert not problems, problems

"""Web ingest against a real HTTP server on 127.0.0.1: robots.txt, redirects, errors, size cap,
content types, other hosts, conditional re-crawls and pruning."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ragloop.core.runtime as runtime_module
from ragloop.cli.main import app
from ragloop.core.errors import InvalidInputError
from ragloop.core.runtime import Runtime
from ragloop.ingest.pipeline import Ingestor, IngestReport
from ragloop.ingest.web import CrawlOptions, WebSource, web_document_id
from tests.fakes import KeywordEmbedder, fake_registry

CAP = 64 * 1024  # the page size cap of these crawls
BIG_BYTES = 4 * 2**20  # what /big.html would send without the cap
STAMP = formatdate(1_700_000_000, usegmt=True)


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    stream_bytes: int = 0  # send this many bytes in pieces, with no Content-Length


class Site:
    """A tiny web site: routes by path, every request recorded (path, status sent)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.log: list[tuple[str, int]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def requests(self, path: str) -> list[int]:
        return [status for p, status in self.log if p == path]

    def serve(self, h: BaseHTTPRequestHandler) -> None:
        route = self.routes.get(h.path)
        if route is None:
            route = Route(b"not here", 404, {"Content-Type": "text/plain"})
        status = route.status
        etag_hit = route.etag and h.headers.get("If-None-Match") == route.etag
        date_hit = route.last_modified and h.headers.get("If-Modified-Since") == route.last_modified
        if etag_hit or date_hit:
            status = 304
        self.log.append((h.path, status))
        h.send_response(status)
        for key, value in route.headers.items():
            h.send_header(key, value)
        if route.etag:
            h.send_header("ETag", route.etag)
        if route.last_modified:
            h.send_header("Last-Modified", route.last_modified)
        if status == 304:
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if route.stream_bytes:
            h.send_header("Connection", "close")
            h.end_headers()
            piece = b"<p>" + b"lava " * 3000 + b"</p>\n"
            sent = 0
            try:
                while sent < route.stream_bytes:
                    h.wfile.write(piece)
                    sent += len(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the crawler stopped reading at its cap, as it should
            return
        if "Content-Length" not in route.headers:
            h.send_header("Content-Length", str(len(route.body)))
        h.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            h.wfile.write(route.body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def html(title: str, body: str) -> Route:
    page = f"<html><head><title>{title}</title></head><body>{body}</body></html>"
    return Route(page.encode(), headers={"Content-Type": "text/html; charset=utf-8"})


@pytest.fixture
def other() -> Iterator[Site]:
    site = Site()
    site.routes["/page.html"] = html("Elsewhere", "<p>banana bread</p>")
    yield site
    site.close()


@pytest.fixture
def site(other: Site) -> Iterator[Site]:
    s = Site()
    b = s.base
    s.routes["/robots.txt"] = Route(
        b"User-agent: *\nDisallow: /private/\n", headers={"Content-Type": "text/plain"}
    )
    index = html(
        "Ocean guide",
        "<nav><a href='/guide.html'>nav</a></nav>"
        "<h1>Ocean</h1><p>The whale swims in the ocean near the coral reef.</p>"
        "<h2>Links</h2><ul>"
        "<li><a href='guide.html#top'>guide</a></li>"
        f"<li><a href='{b}/notes.txt'>notes</a></li>"
        "<li><a href='/private/secret.html'>secret</a></li>"
        "<li><a href='/loop-a'>loop</a></li>"
        "<li><a href='/broken'>broken</a></li>"
        "<li><a href='/big.html'>big</a></li>"
        "<li><a href='/huge.html'>huge</a></li>"
        "<li><a href='/logo.bin'>logo</a></li>"
        "<li><a href='/moved'>moved</a></li>"
        "<li><a href='/draft.html'>draft</a></li>"
        f"<li><a href='{other.base}/page.html'>elsewhere</a></li>"
        "<li><a href='mailto:someone@example.org'>mail</a></li>"
        "</ul>",
    )
    index.last_modified = STAMP
    s.routes["/"] = index
    guide = html(
        "Volcano guide",
        f"<h1>Volcano</h1><p>{'Lava and magma flow from the volcano. ' * 4}</p>"
        f"<h2>Safety</h2><p>{'Keep away from lava. ' * 6}</p><a href='/'>home</a>",
    )
    guide.etag = '"guide-v1"'
    s.routes["/guide.html"] = guide
    s.routes["/notes.txt"] = Route(
        b"Sailors ate citrus against scurvy.\n", headers={"Content-Type": "text/plain"}
    )
    s.routes["/private/secret.html"] = html("Secret", "<p>apple</p>")
    s.routes["/loop-a"] = Route(status=302, headers={"Location": "/loop-b"})
    s.routes["/loop-b"] = Route(status=301, headers={"Location": f"{b}/loop-a"})
    s.routes["/broken"] = Route(b"oops", 500, {"Content-Type": "text/html"})
    s.routes["/big.html"] = Route(headers={"Content-Type": "text/html"}, stream_bytes=BIG_BYTES)
    s.routes["/huge.html"] = Route(
        b"<p>small</p>", headers={"Content-Type": "text/html", "Content-Length": str(10**9)}
    )
    s.routes["/logo.bin"] = Route(
        b"\x89PNG\x00\x01" * 100, headers={"Content-Type": "application/octet-stream"}
    )
    s.routes["/moved"] = Route(status=301, headers={"Location": "/guide.html"})
    s.routes["/draft.html"] = html(
        "Draft", "<meta name='robots' content='noindex'><p>train rail</p>"
    )
    yield s
    s.close()


def crawl(rt: Runtime, urls: list[str], prune: bool = False, **options: object) -> IngestReport:
    opts = CrawlOptions(delay_s=0, max_page_bytes=CAP, **options)  # type: ignore[arg-type]
    return Ingestor(rt).ingest_source(WebSource(urls, opts), prune=prune)


def reasons(report: IngestReport) -> dict[str, str]:
    return {f["name"]: f["reason"] for f in report.failed}


def test_crawl_takes_exactly_the_allowed_pages_and_reports_every_refusal(
    site: Site, other: Site, fake_runtime: Runtime
) -> None:
    b = site.base
    report = crawl(fake_runtime, [b + "/"])
    docs = {d.source: d for d in fake_runtime.catalog.list_documents()}
    assert set(docs) == {f"{b}/", f"{b}/guide.html", f"{b}/notes.txt"}
    assert report.added == 3 and report.chunks_embedded >= 3
    got = reasons(report)
    assert got[f"{b}/private/secret.html"] == "disallowed by robots.txt"
    assert got[f"{b}/loop-a"].startswith("redirect loop: ")
    assert f"{b}/loop-a -> {b}/loop-b -> {b}/loop-a" in got[f"{b}/loop-a"]
    assert got[f"{b}/broken"] == "HTTP 500 Internal Server Error"
    assert "stopped reading" in got[f"{b}/big.html"] and "page limit" in got[f"{b}/big.html"]
    assert got[f"{b}/huge.html"].startswith("1000000000 bytes (Content-Length) is over")
    assert got[f"{b}/logo.bin"] == "unsupported content type application/octet-stream"
    assert len(report.failed) == 6
    # Nothing was asked of the other host, nor of the disallowed path.
    assert other.log == [] and site.requests("/private/secret.html") == []
    skipped = {s["name"]: s["reason"] for s in report.skipped}
    assert f"{other.base}/page.html" in skipped
    assert skipped[f"{b}/draft.html"] == "the page asks not to be indexed"
    # /moved is the guide again: fetched once under its own URL, not a second document.
    assert site.requests("/guide.html") == [200]
    # HTML is cleaned as the file loader does it: title, sections, nav dropped.
    guide = docs[f"{b}/guide.html"]
    assert guide.title == "Volcano guide" and guide.meta["etag"] == '"guide-v1"'
    assert guide.id == web_document_id(f"{b}/guide.html")
    titles = {c.title for c in fake_runtime.catalog.chunks_of(guide.id)}
    assert any("Safety" in t for t in titles)
    index_text = " ".join(c.text for c in fake_runtime.catalog.chunks_of(docs[f"{b}/"].id))
    assert "whale" in index_text and "nav" not in index_text
    assert docs[f"{b}/"].meta["last_modified"] == STAMP


def test_recrawl_with_nothing_changed_embeds_nothing_and_uses_validators(
    site: Site, fake_runtime: Runtime, fake_embedder: KeywordEmbedder
) -> None:
    b = site.base
    crawl(fake_runtime, [b + "/"])
    calls = len(fake_embedder.calls)
    before = {d.id: d.updated_at for d in fake_runtime.catalog.list_documents()}
    site.log.clear()
    again = crawl(fake_runtime, [b + "/"])
    assert again.chunks_embedded == 0 and len(fake_embedder.calls) == calls
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3)
    assert site.requests("/") == [304] and site.requests("/guide.html") == [304]
    assert site.requests("/notes.txt") == [200]  # no validators: same body, same hash
    # Links of pages answered 304 were still followed; the same refusals are reported.
    assert len(again.failed) == 6
    assert {d.id: d.updated_at for d in fake_runtime.catalog.list_documents()} == before


def test_changed_page_is_re_embedded_and_new_validators_are_stored(
    site: Site, fake_runtime: Runtime
) -> None:
    b = site.base
    crawl(fake_runtime, [b + "/"])
    guide = site.routes["/guide.html"]
    guide.body = guide.body.replace(b"Keep away from lava.", b"Bring bread and apple.")
    guide.etag = '"guide-v2"'
    site.routes["/notes.txt"].etag = '"notes-v1"'  # same body, a validator appears
    report = crawl(fake_runtime, [b + "/"])
    assert (report.updated, report.unchanged) == (1, 2) and report.chunks_embedded >= 1
    docs = {d.source: d for d in fake_runtime.catalog.list_documents()}
    assert docs[f"{b}/guide.html"].meta["etag"] == '"guide-v2"'
    assert docs[f"{b}/notes.txt"].meta["etag"] == '"notes-v1"'


def test_prune_removes_pages_gone_or_no_longer_linked(site: Site, fake_runtime: Runtime) -> None:
    b = site.base
    crawl(fake_runtime, [b + "/"])
    del site.routes["/guide.html"]  # 404 from now on
    index = site.routes["/"]
    index.body = index.body.replace(f"{b}/notes.txt".encode(), b"/nowhere")
    index.last_modified = None
    kept = crawl(fake_runtime, [b + "/"])  # without --prune, nothing goes
    assert reasons(kept)[f"{b}/guide.html"] == "HTTP 404 Not Found"
    assert kept.removed == 0 and fake_runtime.catalog.counts()["documents"] == 3
    pruned = crawl(fake_runtime, [b + "/"], prune=True)
    assert pruned.removed == 2 and pruned.chunks_deleted >= 2
    assert [d.source for d in fake_runtime.catalog.list_documents()] == [f"{b}/"]
    assert fake_runtime.store.ids(fake_runtime.active_index().collection) == {
        c.id for c in fake_runtime.catalog.chunks_of(web_document_id(f"{b}/"))
    }


def test_failing_page_keeps_its_document_and_the_pages_it_linked(
    site: Site, fake_runtime: Runtime
) -> None:
    b = site.base
    crawl(fake_runtime, [b + "/"])
    site.routes["/"] = Route(b"down", 503, {"Content-Type": "text/plain"})
    report = crawl(fake_runtime, [b + "/"], prune=True)
    assert reasons(report)[f"{b}/"] == "HTTP 503 Service Unavailable"
    assert report.removed == 0 and report.unchanged == 2
    assert fake_runtime.catalog.counts()["documents"] == 3


def test_page_limit_keeps_unvisited_pages_from_prune(site: Site, fake_runtime: Runtime) -> None:
    b = site.base
    crawl(fake_runtime, [b + "/"])
    report = crawl(fake_runtime, [b + "/"], prune=True, max_pages=1)
    assert report.removed == 0 and fake_runtime.catalog.counts()["documents"] == 3
    assert "page limit (1, --max-pages)" in report.warnings[0]["warning"]


def test_sitemap_lists_start_pages_and_depth_zero_follows_no_links(
    site: Site, fake_runtime: Runtime
) -> None:
    b = site.base
    site.routes["/sitemap.xml"] = Route(
        (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<url><loc>{b}/guide.html</loc></url>"
            f"<url><loc>{b}/notes.txt</loc></url>"
            f"<url><loc>{b}/private/secret.html</loc></url>"
            "</urlset>"
        ).encode(),
        headers={"Content-Type": "application/xml"},
    )
    report = crawl(fake_runtime, [b + "/sitemap.xml"], max_depth=0)
    assert sorted(d.source for d in fake_runtime.catalog.list_documents()) == [
        f"{b}/guide.html",
        f"{b}/notes.txt",
    ]
    assert reasons(report) == {f"{b}/private/secret.html": "disallowed by robots.txt"}
    assert site.requests("/") == []  # the guide links home, but depth 0 follows nothing


def test_delay_between_requests_to_one_host(site: Site, fake_runtime: Runtime) -> None:
    waits: list[float] = []
    source = WebSource(
        [site.base + "/notes.txt"],
        CrawlOptions(delay_s=5.0, max_page_bytes=CAP),
        sleep=waits.append,
    )
    Ingestor(fake_runtime).ingest_source(source)
    # robots.txt, then the page: one wait of (almost) the whole delay between them.
    assert len(waits) == 1 and 4.0 < waits[0] <= 5.0


def test_bad_start_url_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="not an http"):
        WebSource(["ftp://example.org/"])


def test_cli_crawls_a_url(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder: KeywordEmbedder
) -> None:
    monkeypatch.setattr(runtime_module, "default_registry", lambda: fake_registry(fake_embedder))
    env = {"RAGLOOP_EMBEDDER": "fake-keyword", "RAGLOOP_DATA_DIR": str(tmp_path / "d")}
    args = ["ingest", site.base + "/", "--delay", "0", "--max-page-mb", "0.0625", "--json"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 3, result.output  # some pages were refused
    report = json.loads(result.stdout)
    assert report["added"] == 3 and report["failed_count"] == 6
    mixed = CliRunner().invoke(app, ["ingest", site.base + "/", str(tmp_path)], env=env)
    assert mixed.exit_code == 1 and "not both" in mixed.output
    flags = CliRunner().invoke(app, ["ingest", str(tmp_path), "--depth", "2"], env=env)
    assert flags.exit_code == 1 and "--depth apply to URLs only" in flags.output

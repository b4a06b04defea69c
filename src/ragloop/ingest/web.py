"""Web pages as a document source: a crawl from start pages or sitemaps.

Links are followed breadth first to ``max_depth`` hops, on the start URLs' hosts (and those
allowed besides), up to ``max_pages`` requests, through the polite ``Fetcher``
(``web_fetch``). A page is loaded by the HTML, text or Markdown loader, so its text and sections
are exactly those of a file of that type. A page's document id is a hash of its URL; its
metadata keeps the response's ``ETag`` and ``Last-Modified``, the SHA-256 of its body and its
links, so a re-crawl sends conditional requests, and a page answered 304 or with the same body
costs no parsing and no embedding while its links are still followed.
"""

from __future__ import annotations

import hashlib
import re
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from ragloop.core.errors import DocumentError, InvalidInputError
from ragloop.core.records import DocumentRecord
from ragloop.ingest.loaders import LoadedDocument, LoadFailure, load_html, load_markdown, load_text
from ragloop.ingest.pipeline import Gone, SourceItem, Unchanged
from ragloop.ingest.web_fetch import (
    PAGE_TYPES,
    SITEMAP_TYPES,
    Alias,
    Fetcher,
    FetchPolicy,
    NotModified,
    Page,
    Refused,
    host_key,
    is_http,
    normalize_url,
)

#: At most this many links of a page are kept in its metadata and followed.
MAX_LINKS_PER_PAGE = 2000
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


@dataclass(frozen=True)
class CrawlOptions:
    """Limits of a crawl; ``allow_hosts`` are followed besides the start URLs' hosts."""

    max_depth: int = 3
    max_pages: int = 500
    delay_s: float = 1.0
    max_page_bytes: int = 50 * 2**20
    max_redirects: int = 5
    timeout_s: float = 30.0
    allow_hosts: tuple[str, ...] = ()


def web_document_id(url: str) -> str:
    """Stable id of a page's document: a hash of its normalised URL."""
    return "w-" + hashlib.sha256(url.encode()).hexdigest()[:20]


def is_url(text: str) -> bool:
    """True when a command-line argument names a web page rather than a file."""
    return text.lower().startswith(("http://", "https://"))


@dataclass
class _Parsed:
    document: LoadedDocument | None  # None: the page asked not to be indexed
    links: list[str]
    follow: bool


@dataclass
class WebSource:
    """Pages reached from ``urls`` (pages or sitemaps); a ``DocumentSource`` for
    ``Ingestor.ingest_source``. ``transport``, ``sleep`` and ``policy`` (which addresses may
    be reached; None: any) go to the ``Fetcher``."""

    urls: Sequence[str]
    options: CrawlOptions = field(default_factory=CrawlOptions)
    transport: httpx.BaseTransport | None = None
    policy: FetchPolicy | None = None
    sleep: Callable[[float], None] = time.sleep
    complete: bool = True
    warnings: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        bad = [u for u in self.urls if not is_http(u)]
        if bad:
            raise InvalidInputError(f"not an http(s) URL with a host: {bad[0]!r}")
        o = self.options
        if o.max_depth < 0 or o.max_pages < 1 or o.delay_s < 0 or o.max_page_bytes < 1:
            raise InvalidInputError(
                "crawl limits: depth >= 0, pages >= 1, delay >= 0 and page size > 0"
            )
        self.starts = list(dict.fromkeys(normalize_url(u) for u in self.urls))
        allowed = [host_key(h if "//" in h else f"http://{h}") for h in o.allow_hosts]
        self.hosts = {host_key(u) for u in self.starts} | set(allowed)

    def scopes(self) -> list[str]:
        """Both schemes of every host the crawl may visit."""
        return sorted(f"{scheme}://{host}" for host in self.hosts for scheme in ("http", "https"))

    def in_scope(self, url: str) -> bool:
        """True for an http(s) URL on a host the crawl visits."""
        return is_http(url) and host_key(url) in self.hosts

    def documents(self, stored: Mapping[str, DocumentRecord]) -> Iterator[SourceItem]:
        """Crawl: each page becomes a document, an ``Unchanged``, a failure or ``Gone``."""
        o = self.options
        self.complete = True
        self.warnings.clear()
        self.skipped.clear()
        by_url = {d.path: d for d in stored.values()}
        fetcher = Fetcher(
            max_bytes=o.max_page_bytes,
            delay_s=o.delay_s,
            max_redirects=o.max_redirects,
            timeout_s=o.timeout_s,
            transport=self.transport,
            sleep=self.sleep,
            policy=self.policy,
        )
        queue: deque[tuple[str, int, str]] = deque((u, 0, "start") for u in self.starts)
        queued = set(self.starts)
        done: set[str] = set()  # final URLs already taken (a redirect may lead to one again)
        skipped: set[str] = set()
        requests = 0

        def follow(links: Sequence[str], depth: int, kind: str = "page") -> None:
            for link in links:
                if not self.in_scope(link):
                    if link not in skipped and is_http(link):
                        skipped.add(link)
                        self.skipped.append(
                            {"name": link, "reason": "on another host (--allow-host follows it)"}
                        )
                elif link not in queued:
                    queued.add(link)
                    queue.append((link, depth, kind))

        def validators(url: str) -> dict[str, str]:
            meta = by_url[url].meta if url in by_url else {}
            headers = {}
            if meta.get("etag"):
                headers["If-None-Match"] = str(meta["etag"])
            if meta.get("last_modified"):
                headers["If-Modified-Since"] = str(meta["last_modified"])
            return headers

        try:
            while queue:
                if requests >= o.max_pages:
                    self.complete = False
                    self.warnings.append(
                        {
                            "name": self.starts[0],
                            "warning": f"stopped at the page limit ({o.max_pages}, --max-pages) "
                            f"with {len(queue)} linked pages not fetched; --prune removes only "
                            "pages that answered 404 or 410",
                        }
                    )
                    break
                url, depth, kind = queue.popleft()
                accept = {
                    "start": PAGE_TYPES | SITEMAP_TYPES,
                    "sitemap": SITEMAP_TYPES,
                    "page": PAGE_TYPES,
                }[kind]
                got = fetcher.fetch(url, accept, self.in_scope, validators, done.__contains__)
                if not isinstance(got, Refused) or got.requested:
                    requests += 1
                if isinstance(got, Alias):
                    continue  # a redirect to a page taken already
                if isinstance(got, Refused):
                    if got.gone:
                        yield Gone(url, got.reason, got.url)
                        continue
                    yield LoadFailure(url, got.reason, got.url)
                    old = by_url.get(url)
                    if old is not None:
                        # What it linked last time is still looked at, so a page that fails
                        # for now does not leave the pages below it to --prune.
                        if depth < o.max_depth and not old.meta.get("nofollow"):
                            follow(list(old.meta.get("links", [])), depth + 1)
                    elif kind != "page":
                        self.complete = False
                        self.warnings.append(
                            {
                                "name": url,
                                "warning": "could not be read; --prune removes only pages "
                                "that answered 404 or 410",
                            }
                        )
                    continue
                final = got.url
                if final in done:
                    continue  # another URL redirected here already
                done.add(final)
                queued.add(final)
                links: list[str] = []
                nofollow = False
                if isinstance(got, NotModified):
                    old = by_url[final]
                    yield Unchanged(old.id, final)
                    links = list(old.meta.get("links", []))
                    nofollow = bool(old.meta.get("nofollow"))
                elif got.media_type in SITEMAP_TYPES:
                    try:
                        entries, index = sitemap_urls(got.body)
                    except DocumentError as exc:
                        yield LoadFailure(url, exc.message, final)
                        continue
                    follow(entries, 0, "sitemap" if index else "page")
                    continue
                else:
                    item, links, nofollow = self._page(got, by_url.get(final))
                    if item is not None:
                        yield item
                if depth < o.max_depth and not nofollow:
                    follow(links, depth + 1)
        finally:
            fetcher.close()

    def _page(
        self, page: Page, old: DocumentRecord | None
    ) -> tuple[SourceItem | None, list[str], bool]:
        """A fetched page as a document (or unchanged, or a failure), its links, and whether
        they may be followed."""
        digest = hashlib.sha256(page.body).hexdigest()
        meta: dict[str, Any] = {
            "url": page.url,
            "etag": page.etag,
            "last_modified": page.last_modified,
            "sha256": digest,
        }
        if old is not None and old.meta.get("sha256") == digest:
            links = list(old.meta.get("links", []))
            nofollow = bool(old.meta.get("nofollow"))
            meta |= {"links": links, "nofollow": nofollow}
            return Unchanged(old.id, page.url, meta), links, nofollow
        try:
            parsed = parse_page(page)
        except DocumentError as exc:
            return LoadFailure(page.url, exc.message, page.url), [], False
        meta |= {"links": parsed.links, "nofollow": not parsed.follow}
        if parsed.document is None:
            self.skipped.append({"name": page.url, "reason": "the page asks not to be indexed"})
            return None, parsed.links, not parsed.follow
        return replace(parsed.document, meta=meta), parsed.links, not parsed.follow


def parse_page(page: Page) -> _Parsed:
    """A page's document (by the loader of its type), its links and robots directives."""
    charset = page.charset
    if charset is None and page.media_type in _HTML_TYPES:
        m = _META_CHARSET.search(page.body[:4096])
        charset = m.group(1).decode("ascii") if m else None
    data = page.body
    if charset and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        try:
            data = page.body.decode(charset).encode()
        except LookupError:
            raise DocumentError(f"unknown charset {charset!r}") from None
        except UnicodeDecodeError as exc:
            raise DocumentError(f"not valid {charset} (at offset {exc.start})") from None
    directives = {d.strip().lower() for d in page.robots_tag.split(",")}
    links: list[str] = []
    if page.media_type in _HTML_TYPES:
        text = data.decode("utf-8", "replace")
        page_links, page_directives = html_links(text, page.url)
        links, directives = page_links, directives | page_directives
    index = not ({"noindex", "none"} & directives)
    follow = not ({"nofollow", "none"} & directives)
    if not index:
        return _Parsed(None, links, follow)
    loader = {"text/plain": load_text, "text/markdown": load_markdown}.get(
        page.media_type, load_markdown if page.media_type == "text/x-markdown" else load_html
    )
    name = PurePosixPath(urlsplit(page.url).path).name or host_key(page.url)
    loaded = next(iter(loader(Path(name), data)))
    if isinstance(loaded, LoadFailure):
        raise DocumentError(loaded.reason)
    doc = replace(
        loaded,
        id=web_document_id(page.url),
        path=page.url,
        source=page.url,
        size_bytes=len(page.body),
    )
    return _Parsed(doc, links, follow)


def html_links(html: str, url: str) -> tuple[list[str], set[str]]:
    """The http(s) links of an HTML page (normalised, in order, once each, at most
    ``MAX_LINKS_PER_PAGE``) and its robots meta directives (``noindex``, ``nofollow``...)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    base = url
    tag = soup.find("base", href=True)
    if tag is not None:
        base = urljoin(url, str(tag.get("href", "")))
    directives: set[str] = set()
    for meta in soup.find_all("meta"):
        if str(meta.get("name", "")).lower() in ("robots", "ragloop"):
            directives |= {d.strip().lower() for d in str(meta.get("content", "")).split(",")}
    links: dict[str, None] = {}
    for a in soup.find_all("a", href=True):
        if "nofollow" in [str(r).lower() for r in a.get_attribute_list("rel") if r]:
            continue
        target = urljoin(base, str(a.get("href", "")).strip())
        if is_http(target):
            links.setdefault(normalize_url(target), None)
        if len(links) >= MAX_LINKS_PER_PAGE:
            break
    return list(links), directives


def sitemap_urls(body: bytes) -> tuple[list[str], bool]:
    """The ``<loc>`` URLs of a sitemap, and whether it is a sitemap index (its URLs are
    sitemaps). Document type declarations are refused (no entity expansion)."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise DocumentError("sitemap with a document type declaration refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise DocumentError(f"not a valid sitemap: {exc}") from None
    kind = root.tag.rsplit("}", 1)[-1]
    if kind not in ("urlset", "sitemapindex"):
        raise DocumentError(f"not a sitemap (root element <{kind}>)")
    urls: dict[str, None] = {}
    for entry in root:  # <url> or <sitemap>; a <loc> of an extension (images) is not a page
        for el in entry:
            text = (el.text or "").strip()
            if el.tag.rsplit("}", 1)[-1] == "loc" and is_http(text):
                urls.setdefault(normalize_url(text), None)
    return list(urls), kind == "sitemapindex"

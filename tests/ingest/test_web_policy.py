"""The fetch policy of server-side crawls, against a real HTTP server on 127.0.0.1: addresses
that are not public are refused before a request and on every connection (redirects and
robots.txt included), unless allowed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ragloop.core.runtime import Runtime
from ragloop.ingest.pipeline import Ingestor
from ragloop.ingest.web import CrawlOptions, WebSource
from ragloop.ingest.web_fetch import FetchPolicy, PolicyTransport, non_public
from tests.ingest.test_web import Route, Site, html

FAST = CrawlOptions(delay_s=0)


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    s.routes["/"] = html("Ocean", "<p>The whale swims in the ocean.</p>")
    yield s
    s.close()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "non-public"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_addresses_that_are_not_public_are_named(address: str, kind: str | None) -> None:
    assert non_public(address) == kind


def test_the_policy_refuses_a_loopback_host_unless_allowed(site: Site) -> None:
    port = site.server.server_address[1]
    refused = FetchPolicy().refusal(site.base + "/")
    assert refused is not None and "127.0.0.1, a loopback address" in refused
    assert "RAGLOOP_WEB_ALLOW_PRIVATE" in refused
    named = FetchPolicy().refusal(f"http://localhost:{port}/")
    assert named is not None and "localhost resolves to 127.0.0.1" in named
    assert FetchPolicy(allow_private=True).refusal(site.base + "/") is None
    assert FetchPolicy(allowed_hosts=frozenset({"127.0.0.1"})).refusal(site.base + "/") is None
    by_port = FetchPolicy(allowed_hosts=frozenset({f"127.0.0.1:{port}"}))
    assert by_port.refusal(site.base + "/") is None
    assert by_port.refusal(f"http://127.0.0.1:{port + 1}/") is not None


def test_connections_go_through_the_policy(site: Site) -> None:
    # The transport checks the address it connects to, whatever was checked before.
    with (
        httpx.Client(transport=PolicyTransport(FetchPolicy())) as client,
        pytest.raises(httpx.ConnectError, match="loopback address"),
    ):
        client.get(site.base + "/")
    allowed = FetchPolicy(allowed_hosts=frozenset({"127.0.0.1"}))
    with httpx.Client(transport=PolicyTransport(allowed)) as client:
        assert "whale" in client.get(site.base + "/").text
    assert site.requests("/") == [200]  # the refused client sent nothing


def test_a_crawl_under_the_policy_fetches_nothing_private(
    site: Site, fake_runtime: Runtime
) -> None:
    report = Ingestor(fake_runtime).ingest_source(
        WebSource([site.base + "/"], FAST, policy=FetchPolicy())
    )
    assert report.added == 0
    [failed] = report.failed
    assert "refused by the fetch policy: 127.0.0.1, a loopback address" in failed["reason"]
    assert site.log == []  # not even robots.txt
    allowed = WebSource([site.base + "/"], FAST, policy=FetchPolicy(allow_private=True))
    assert Ingestor(fake_runtime).ingest_source(allowed).added == 1


def test_redirects_and_robots_txt_cannot_leave_the_allowed_hosts(
    site: Site, fake_runtime: Runtime
) -> None:
    port = site.server.server_address[1]
    named = f"http://localhost:{port}"
    policy = FetchPolicy(allowed_hosts=frozenset({f"localhost:{port}"}))
    site.routes["/moved"] = Route(status=302, headers={"Location": f"{site.base}/"})
    # A redirect to 127.0.0.1 (in the crawl's scope through allow_hosts) is refused by name.
    options = CrawlOptions(delay_s=0, allow_hosts=(f"127.0.0.1:{port}",))
    report = Ingestor(fake_runtime).ingest_source(
        WebSource([named + "/moved"], options, policy=policy)
    )
    [failed] = report.failed
    assert "refused by the fetch policy: 127.0.0.1, a loopback address" in failed["reason"]
    assert f"redirected to {site.base}/" in failed["reason"]
    assert site.requests("/") == []
    # robots.txt is fetched following redirects: the connection to 127.0.0.1 is refused, so
    # the site is not crawled at all.
    site.routes["/robots.txt"] = Route(status=301, headers={"Location": f"{site.base}/rules"})
    site.routes["/rules"] = Route(
        b"User-agent: *\nAllow: /\n", headers={"Content-Type": "text/plain"}
    )
    report = Ingestor(fake_runtime).ingest_source(WebSource([named + "/"], FAST, policy=policy))
    [failed] = report.failed
    assert "robots.txt" in failed["reason"] and "not crawled" in failed["reason"]
    assert site.requests("/rules") == [] and site.requests("/") == []

"""Polite HTTP fetching for the web crawler: robots.txt, a delay per host, redirects followed
one hop at a time within limits, content types checked before the body is read, and a size
cap enforced while streaming.

Every outcome is a value: a ``Page``, ``NotModified`` (an answer 304 to a conditional
request), an ``Alias`` (a redirect to a page the caller has) or ``Refused`` with a one-line
reason. Nothing here raises for a page that cannot be had.

A ``FetchPolicy`` keeps a crawl off addresses that are not public (loopback, private,
link-local...): a crawl the server runs for a remote caller must not reach the server's own
network. It is checked before each request, for a clear reason, and again by
``PolicyTransport`` on every connection, to the very address connected to, so a redirect, a
robots.txt redirect or a name that resolves differently the second time cannot get round it.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpcore
import httpx

#: The name robots.txt rules are matched against, and the start of the User-Agent header.
ROBOTS_NAME = "ragloop"
USER_AGENT = f"{ROBOTS_NAME}/0.1 (document ingest)"

#: Media types a page may have.
PAGE_TYPES = frozenset(
    {"text/html", "application/xhtml+xml", "text/plain", "text/markdown", "text/x-markdown"}
)
#: Media types of a sitemap.
SITEMAP_TYPES = frozenset({"application/xml", "text/xml"})

# RFC 9309: a crawler parses at least 500 KiB of robots.txt; the rest may be ignored.
_ROBOTS_MAX_BYTES = 500 * 1024
# The longest Crawl-delay honoured, so an odd robots.txt cannot stall a run for hours.
_MAX_CRAWL_DELAY_S = 60.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class Page:
    """A page's body (whole, under the size cap) with what the response said about it."""

    url: str
    body: bytes
    media_type: str
    charset: str | None
    etag: str | None
    last_modified: str | None
    robots_tag: str


@dataclass(frozen=True)
class NotModified:
    """The server answered 304 to a conditional request for ``url``."""

    url: str


@dataclass(frozen=True)
class Refused:
    """A URL not fetched, and why. ``gone``: the server said 404 or 410 for ``url``;
    ``requested``: a request was sent (a robots.txt refusal sends none)."""

    url: str
    reason: str
    gone: bool = False
    requested: bool = True


@dataclass(frozen=True)
class Alias:
    """``url`` redirects to ``target``, a page the caller already has."""

    url: str
    target: str


Fetched = Page | NotModified | Refused | Alias


def normalize_url(url: str) -> str:
    """``url`` without its fragment, with a lower-case scheme and host, no default port and
    ``/`` for an empty path, so one page has one spelling."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    return urlunsplit((scheme, host_key(url), parts.path or "/", parts.query, ""))


def host_key(url: str) -> str:
    """The host (and port, unless the scheme's default) of ``url``, lower case."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return host if port is None or port == default else f"{host}:{port}"


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``."""
    return f"{urlsplit(url).scheme.lower()}://{host_key(url)}"


def is_http(url: str) -> bool:
    """True for an http or https URL with a host."""
    parts = urlsplit(url)
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


@dataclass(frozen=True)
class FetchPolicy:
    """Which addresses a crawl may connect to: public ones only, unless ``allow_private``;
    a host of ``allowed_hosts`` (``host`` or ``host:port``, lower case) whatever its
    addresses."""

    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()

    def allows(self, host: str, port: int | None) -> bool:
        """True when ``host`` is let through without looking at its addresses."""
        if self.allow_private:
            return True
        name = host.lower().strip("[]")
        names = {name, f"[{name}]"}
        if port is not None:
            names |= {f"{n}:{port}" for n in tuple(names)}
        return bool(names & self.allowed_hosts)

    def refusal(self, url: str) -> str | None:
        """Why ``url``'s host may not be fetched, or None. A host that does not resolve is not
        refused here: fetching it fails with its own reason."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
        except ValueError:
            return f"bad port in {url}"
        if self.allows(host, port):
            return None
        try:
            addresses = resolve(host, port)
        except OSError:
            return None
        return self.address_refusal(host, addresses)

    def address_refusal(self, host: str, addresses: list[str]) -> str | None:
        """Why connecting to ``host`` at ``addresses`` is refused (any one not public), or
        None."""
        for address in addresses:
            kind = non_public(address)
            if kind:
                where = address if host.strip("[]") == address else f"{host} resolves to {address}"
                return (
                    f"refused by the fetch policy: {where}, a {kind} address "
                    "(RAGLOOP_WEB_ALLOW_PRIVATE or RAGLOOP_WEB_ALLOWED_HOSTS lets it through)"
                )
        return None


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order, once each."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def non_public(address: str) -> str | None:
    """What kind of address that is not public ``address`` is (``loopback``, ``private``,
    ``link-local``...), or None for a public one. An IPv4-mapped IPv6 address counts as its
    IPv4 address."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, test in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("unspecified", ip.is_unspecified),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if test:
            return kind
    return None if ip.is_global else "non-public"


class _PolicyBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to addresses the policy allows, connecting to the address
    it checked (the TLS server name is still the host's)."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if self.policy.allows(host, port):
            return self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            addresses = resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        refused = self.policy.address_refusal(host, addresses)
        if refused:
            raise httpcore.ConnectError(refused)
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"no address for {host}")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("a crawl does not use Unix sockets")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class PolicyTransport(httpx.HTTPTransport):
    """httpx's own transport whose connections are opened through the policy. (A client
    given a transport uses no proxy from the environment, which could reach any address.)"""

    def __init__(self, policy: FetchPolicy) -> None:
        super().__init__()
        # The pool HTTPTransport builds, with the policy's network backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_PolicyBackend(policy),
        )


@dataclass(frozen=True)
class _Robots:
    parser: RobotFileParser | None  # None: the robots.txt was unreachable, so nothing is
    reason: str  # why nothing may be fetched (when parser is None)
    delay_s: float


class Fetcher:
    """Fetches pages one at a time, waiting ``delay_s`` between requests to one host (or the
    site's Crawl-delay when longer, up to a minute). ``transport`` replaces httpx's network
    transport; ``sleep`` and ``clock`` drive the waits. With a ``policy``, a URL whose host it
    refuses is not fetched, and connections go through ``PolicyTransport`` (unless a
    ``transport`` is given)."""

    def __init__(
        self,
        *,
        max_bytes: int,
        delay_s: float = 1.0,
        max_redirects: int = 5,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        policy: FetchPolicy | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.policy = policy
        if policy is not None and transport is None:
            transport = PolicyTransport(policy)
        self.delay_s = delay_s
        self.max_redirects = max_redirects
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.clock = clock
        self.client = httpx.Client(
            transport=transport,
            timeout=timeout_s,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        self._robots: dict[str, _Robots] = {}
        self._last: dict[str, float] = {}
        self._refusals: dict[str, str | None] = {}

    def close(self) -> None:
        """Release the connections."""
        self.client.close()

    def fetch(
        self,
        url: str,
        accept: Collection[str],
        in_scope: Callable[[str], bool],
        validators: Callable[[str], Mapping[str, str]],
        taken: Callable[[str], bool] = lambda _url: False,
    ) -> Fetched:
        """Fetch ``url``, following redirects that stay in scope, with the conditional headers
        ``validators`` gives for each URL; a body of a type outside ``accept`` is not read. A
        redirect to a URL ``taken`` says the caller has is not followed (an ``Alias``)."""
        chain = [url]
        current = url
        requested = False
        while True:
            refused = self._refusal(current)
            if refused:
                return Refused(url, _via(chain, refused), requested=requested)
            robots = self._robots_for(current)
            if robots.parser is None:
                return Refused(url, robots.reason, requested=requested)
            if not robots.parser.can_fetch(ROBOTS_NAME, current):
                return Refused(url, _via(chain, "disallowed by robots.txt"), requested=requested)
            headers = dict(validators(current))
            requested = True
            try:
                with self._stream(current, headers) as response:
                    status = response.status_code
                    if status in _REDIRECTS:
                        location = response.headers.get("location")
                        if not location:
                            return Refused(url, _via(chain, f"HTTP {status} without a Location"))
                        target = normalize_url(urljoin(current, location))
                        problem = _redirect_problem(chain, target, self.max_redirects, in_scope)
                        if problem:
                            return Refused(url, problem)
                        if taken(target):
                            return Alias(url, target)
                        chain.append(target)
                        current = target
                        continue
                    return self._answer(url, chain, response, accept, bool(headers))
            except httpx.TimeoutException as exc:
                reason = f"timed out after {self.timeout_s:g} s ({exc.__class__.__name__})"
                return Refused(url, _via(chain, reason))
            except httpx.HTTPError as exc:
                return Refused(url, _via(chain, f"cannot fetch: {exc.__class__.__name__}: {exc}"))

    def _answer(
        self,
        url: str,
        chain: list[str],
        response: httpx.Response,
        accept: Collection[str],
        conditional: bool,
    ) -> Fetched:
        """What a response that is not a redirect gives; the body is read only when wanted."""
        current, status = chain[-1], response.status_code
        if status == 304 and conditional:
            return NotModified(current)
        if status in (404, 410):
            return Refused(current, _via(chain, _status(response)), gone=True)
        if not 200 <= status < 300:
            return Refused(url, _via(chain, _status(response)))
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in accept:
            shown = media or "(none given)"
            return Refused(url, _via(chain, f"unsupported content type {shown}"))
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return Refused(
                url,
                _via(chain, f"{declared} bytes (Content-Length) is over {self._limit()}"),
            )
        body = bytearray()
        for part in response.iter_bytes():
            body += part
            if len(body) > self.max_bytes:
                reason = f"over {self._limit()}; stopped reading after {len(body)} bytes"
                return Refused(url, _via(chain, reason))
        return Page(
            url=current,
            body=bytes(body),
            media_type=media,
            charset=response.charset_encoding,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            robots_tag=response.headers.get("x-robots-tag", ""),
        )

    def _refusal(self, url: str) -> str | None:
        """Why the policy refuses ``url``'s site, looked up once per site."""
        if self.policy is None:
            return None
        site = origin(url)
        if site not in self._refusals:
            self._refusals[site] = self.policy.refusal(url)
        return self._refusals[site]

    def _limit(self) -> str:
        return f"the {self.max_bytes / 2**20:g} MiB page limit ({self.max_bytes} bytes)"

    @contextmanager
    def _stream(self, url: str, headers: Mapping[str, str]) -> Iterator[httpx.Response]:
        """A GET of ``url`` once the host may be asked again; the body is not read yet."""
        robots = self._robots.get(origin(url))
        self._wait(url, robots.delay_s if robots is not None else 0.0)
        with self.client.stream("GET", url, headers=dict(headers)) as response:
            yield response

    def _wait(self, url: str, extra_delay: float = 0.0) -> None:
        """Sleep until this host may be asked again."""
        host = host_key(url)
        delay = max(self.delay_s, extra_delay)
        last = self._last.get(host)
        if last is not None and delay > 0:
            remaining = last + delay - self.clock()
            if remaining > 0:
                self.sleep(remaining)
        self._last[host] = self.clock()

    def _robots_for(self, url: str) -> _Robots:
        """The robots.txt rules of ``url``'s site, read once per site (RFC 9309: a 4xx means
        no rules; a 5xx or no answer means nothing may be fetched)."""
        site = origin(url)
        known = self._robots.get(site)
        if known is not None:
            return known
        robots_url = site + "/robots.txt"
        parser = RobotFileParser(robots_url)
        self._wait(robots_url)
        try:
            with self.client.stream("GET", robots_url, follow_redirects=True) as response:
                status = response.status_code
                body = bytearray()
                if 200 <= status < 300:
                    for part in response.iter_bytes():
                        body += part
                        if len(body) >= _ROBOTS_MAX_BYTES:
                            break
        except httpx.TooManyRedirects:
            status, body = 404, bytearray()  # RFC 9309: unresolved redirects count as 4xx
        except httpx.HTTPError as exc:
            reason = f"robots.txt of {site} could not be read ({exc.__class__.__name__})"
            known = _Robots(None, reason + ", so the site is not crawled", 0.0)
            self._robots[site] = known
            return known
        if status >= 500:
            reason = f"robots.txt of {site} answered HTTP {status}, so the site is not crawled"
            known = _Robots(None, reason, 0.0)
        else:
            lines = bytes(body[:_ROBOTS_MAX_BYTES]).decode("utf-8", "replace").splitlines()
            parser.parse(lines if 200 <= status < 300 else [])
            delay = parser.crawl_delay(ROBOTS_NAME)
            known = _Robots(parser, "", min(float(delay or 0.0), _MAX_CRAWL_DELAY_S))
        self._robots[site] = known
        return known


def _status(response: httpx.Response) -> str:
    phrase = response.reason_phrase
    return f"HTTP {response.status_code}" + (f" {phrase}" if phrase else "")


def _via(chain: list[str], reason: str) -> str:
    """``reason``, naming the URL a redirect led to when there was one."""
    return reason if len(chain) == 1 else f"{reason} (redirected to {chain[-1]})"


def _redirect_problem(
    chain: list[str], target: str, max_redirects: int, in_scope: Callable[[str], bool]
) -> str | None:
    """Why the redirect from the last URL of ``chain`` to ``target`` is not followed."""
    if target in chain:
        return "redirect loop: " + " -> ".join([*chain[chain.index(target) :], target])
    if len(chain) > max_redirects:
        return f"more than {max_redirects} redirects: " + " -> ".join([*chain, target])
    if not is_http(target):
        return f"redirects to a URL that is not http(s): {target}"
    if not in_scope(target):
        return f"redirects to another host: {target}"
    return None

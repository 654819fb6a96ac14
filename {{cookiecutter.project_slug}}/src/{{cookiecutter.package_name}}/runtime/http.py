"""A guarded HTTP GET for activities that download what someone else chose (URLs from input).

One bad URL must never fail the batch, exhaust the worker or reach what it should not, so
`GuardedHttp.get` never raises for a URL: it returns the body (`Fetched`) or why not
(`FetchFailure`, with `transient` saying whether trying again may help). What it guards:

- Addresses: every address a host resolves to, at every hop, is checked before the
  connection is made (the resolver of the connection pool checks, and the connection goes
  to the address checked: no second lookup). Refused unless it is in `allowed_networks` or
  is a global unicast address: loopback, private, link-local (cloud metadata at
  169.254.169.254), carrier-grade NAT, multicast, reserved and unspecified addresses are
  refused, IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
- Redirects: followed by hand, at most `max_redirects`, each hop checked again; https to
  http is refused.
- The body: read raw and decoded here (identity, gzip or deflate; nested or other
  encodings refused), with the decoded size bounded by `max_bytes` while it streams, so a
  small compressed bomb costs at most `max_bytes` of memory.
- Time: `timeout_seconds` per connect and per read, and `deadline_seconds` for the whole URL
  (every hop and the body), so a server sending a byte a second cannot hold a download.

The client is aiohttp, chosen by measurement inside the fetch activity (the pipeline sample's
`make bench`, bench/fetch_clients.py): httpx took about 5x its CPU per request at concurrency
10 and over 20x at 50 (httpcore's pool scans its connections for every request), on 2 cores.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import ipaddress
import socket
import zlib
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchPolicy:
    """The limits of every GET: built from settings by the caller (see the samples' app.py)."""

    timeout_seconds: float = 10.0
    """Timeout of the connect and of each read."""
    deadline_seconds: float = 60.0
    """The whole URL: every redirect hop and the body."""
    max_bytes: int = 10 * 1024 * 1024
    """Most bytes of a body, after decoding."""
    max_redirects: int = 5
    allowed_networks: tuple[IPNetwork, ...] = ()
    """Networks allowed beside global addresses (e.g. 127.0.0.1/32 for a local test site)."""


@dataclass(frozen=True)
class Fetched:
    """A body, decoded from its Content-Encoding (not from its charset)."""

    url: str
    """The URL the body came from, after redirects."""
    status: int
    body: bytes
    encoding: str
    """The charset the server named, if Python knows it; else utf-8."""
    content_type: str


@dataclass(frozen=True)
class FetchFailure:
    """Why a URL gave no body; `transient`: trying again later may help."""

    reason: str
    transient: bool
    status: int | None = None


class HttpClient(Protocol):
    """What the fetch activity needs of a client: `async with`, and a GET that never raises
    for a URL. GuardedHttp is the one; the pipeline's bench measures an httpx one against it."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def get(self, url: str) -> Fetched | FetchFailure: ...


class HttpClientFactory(Protocol):
    """How the fetch activity builds its client (GuardedHttp by default)."""

    def __call__(self, policy: FetchPolicy, *, connections: int) -> HttpClient: ...


class _RefusedError(Exception):
    """Stops one URL: the reason is the failure's, `transient` as in FetchFailure."""

    def __init__(self, reason: str, *, transient: bool = False, status: int | None = None) -> None:
        super().__init__(reason)
        self.transient = transient
        self.status = status


class AddressRefusedError(OSError):
    """An address the policy refuses (raised in the resolver, so it is an OSError)."""


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (`127.0.0.1/32`, `10.0.0.0/8`, `::1/128`) as networks; ValueError names a bad one."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


@functools.lru_cache(maxsize=4096)  # a pure function, asked once per request or more
def address_refusal(address: str, allowed: tuple[IPNetwork, ...]) -> str | None:
    """Why the policy refuses to connect to `address` (an IP literal), or None if it may."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # no IPv6 zone
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return f"address {ip} is {kind.replace('_', '-')}, not allowed"
    if not ip.is_global:
        return f"address {ip} is not a global address, not allowed"
    return None


class PolicyResolver(AbstractResolver):
    """Resolves with getaddrinfo and refuses the host if any of its addresses is refused."""

    def __init__(self, allowed: tuple[IPNetwork, ...]) -> None:
        self._allowed = allowed
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            refusal = address_refusal(result["host"], self._allowed)
            if refusal is not None:
                raise AddressRefusedError(f"{host} resolves to {result['host']}: {refusal}")
        return results

    async def close(self) -> None:
        await self._inner.close()


class GuardedHttp:
    """An aiohttp session that applies a FetchPolicy to every GET; use it as `async with`."""

    def __init__(self, policy: FetchPolicy, *, connections: int = 10) -> None:
        self.policy = policy
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(
            limit=self._connections,
            resolver=PolicyResolver(self.policy.allowed_networks),
            use_dns_cache=False,  # each new connection is resolved, hence checked, again
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.policy.timeout_seconds,
            sock_read=self.policy.timeout_seconds,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,  # decoded here, bounded (`_read_body`)
            trust_env=False,  # no proxy from the environment
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, url: str) -> Fetched | FetchFailure:
        """GET `url`: the body, or why not. Never raises for a URL (cancellation aside)."""
        deadline = self.policy.deadline_seconds
        whole_url = asyncio.timeout(deadline)
        try:
            async with whole_url:
                return await self._get(url)
        except _RefusedError as refused:
            return FetchFailure(str(refused), refused.transient, refused.status)
        except TimeoutError:
            if whole_url.expired():  # a slow server: no faster on the next try
                return FetchFailure(f"not done within {deadline:g}s", transient=False)
            return FetchFailure(f"timed out after {self.policy.timeout_seconds:g}s", transient=True)
        except aiohttp.ClientConnectorError as exc:
            refusal = _address_refused(exc)
            if refusal is not None:
                return FetchFailure(refusal, transient=False)
            return FetchFailure(f"cannot connect: {exc.os_error}", transient=True)
        except aiohttp.InvalidURL as exc:
            return FetchFailure(f"bad URL: {exc}", transient=False)
        except (aiohttp.ClientError, OSError) as exc:
            return FetchFailure(f"{type(exc).__name__}: {exc}", transient=True)
        except Exception as exc:  # anything else is this URL's failure, never the batch's
            return FetchFailure(f"{type(exc).__name__}: {exc}", transient=False)

    async def _get(self, url: str) -> Fetched:
        if self._session is None:
            raise RuntimeError("use GuardedHttp as `async with GuardedHttp(policy) as http`")
        target = _checked_url(url)
        for _hop in range(self.policy.max_redirects + 1):
            _check_literal(target, self.policy.allowed_networks)
            async with self._session.get(target, allow_redirects=False) as response:
                if response.status in REDIRECT_STATUS:
                    target = _next_hop(target, response.headers.get("Location"))
                    continue
                if response.status in RETRYABLE_STATUS:
                    raise _RefusedError(
                        f"HTTP {response.status}", transient=True, status=response.status
                    )
                if not 200 <= response.status < 300:
                    reason = f"HTTP {response.status} {response.reason or ''}".strip()
                    raise _RefusedError(reason, status=response.status)
                body = await _read_body(response, self.policy.max_bytes)
                return Fetched(
                    url=str(target),
                    status=response.status,
                    body=body,
                    encoding=_known_charset(response.charset),
                    content_type=response.content_type,
                )
        raise _RefusedError(f"more than {self.policy.max_redirects} redirects")


def _checked_url(url: str) -> URL:
    """`url` parsed, if it is an absolute http(s) URL with a host and a valid port."""
    try:
        parsed = URL(url)
        host, port = parsed.host, parsed.port
    except (ValueError, UnicodeError) as exc:
        raise _RefusedError(f"bad URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise _RefusedError("bad URL: only http:// and https:// are fetched")
    if not host:
        raise _RefusedError("bad URL: no host")
    if port is not None and not 0 < port < 65536:
        raise _RefusedError(f"bad URL: port {port} out of range")
    return parsed


def redirect_refusal(current: URL, location: URL) -> str | None:
    """Why a redirect from `current` to `location` is not followed, or None."""
    if location.scheme not in ("http", "https"):
        return f"redirect to a non-http URL ({location.scheme or 'no scheme'})"
    if current.scheme == "https" and location.scheme == "http":
        return "redirect from https to http refused"
    return None


def _next_hop(current: URL, location: str | None) -> URL:
    if not location:
        raise _RefusedError("redirect without a Location")
    target = _checked_url(str(current.join(URL(location))))
    refusal = redirect_refusal(current, target)
    if refusal is not None:
        raise _RefusedError(refusal)
    return target


def _check_literal(url: URL, allowed: tuple[IPNetwork, ...]) -> None:
    """An IP literal host is not resolved (aiohttp connects to it as it is): check it here."""
    refusal = _literal_refusal(url.host or "", allowed)
    if refusal is not None:
        raise _RefusedError(refusal)


@functools.lru_cache(maxsize=4096)
def _literal_refusal(host: str, allowed: tuple[IPNetwork, ...]) -> str | None:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None  # a name: PolicyResolver checks what it resolves to
    return address_refusal(host, allowed)


def _address_refused(exc: BaseException) -> str | None:
    """The policy's refusal inside an aiohttp connection error, if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AddressRefusedError):
            return str(seen)
        inner = getattr(seen, "os_error", None)
        seen = inner if isinstance(inner, BaseException) and inner is not seen else seen.__cause__
    return None


async def _read_body(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body decoded from its Content-Encoding, refused once it passes `max_bytes`."""
    coding = response.headers.get("Content-Encoding")
    return await _decode_body(coding, response.content.iter_chunked(CHUNK), max_bytes)


async def _decode_body(
    content_encoding: str | None, chunks: AsyncIterable[bytes], max_bytes: int
) -> bytes:
    """Raw `chunks` decoded from `content_encoding`, bounded while they stream (any client)."""
    coding = (content_encoding or "identity").strip().lower() or "identity"
    if "," in coding:
        raise _RefusedError(f"nested Content-Encoding {coding!r} refused")
    if coding != "identity" and coding not in DECODERS:
        raise _RefusedError(f"Content-Encoding {coding!r} not supported (identity, gzip, deflate)")
    decoder = zlib.decompressobj(DECODERS[coding]) if coding != "identity" else None
    body = bytearray()
    too_big = _RefusedError(
        f"body over {max_bytes} bytes" + ("" if decoder is None else " decoded")
    )
    async for chunk in chunks:
        if decoder is None:
            body += chunk
        else:
            data = chunk
            while data:
                try:
                    body += decoder.decompress(data, max_bytes + 1 - len(body))
                except zlib.error as exc:
                    raise _RefusedError(f"bad {coding} body: {exc}") from None
                if len(body) > max_bytes:
                    raise too_big
                data = decoder.unconsumed_tail
                if decoder.eof and (data or decoder.unused_data):
                    raise _RefusedError(f"data after the end of the {coding} body")
        if len(body) > max_bytes:
            raise too_big
    if decoder is not None and not decoder.eof:
        raise _RefusedError(f"bad {coding} body: truncated")
    return bytes(body)


def _known_charset(charset: str | None) -> str:
    """The server's charset if Python has a text codec for it, else utf-8 (so decoding the
    body never raises LookupError; `rot13` or `zlib` are codecs, but not text encodings)."""
    if not charset:
        return "utf-8"
    try:
        name = codecs.lookup(charset).name
    except (LookupError, ValueError):
        return "utf-8"
    try:
        b"a".decode(name)
    except UnicodeDecodeError:
        pass  # a text codec that wants more than one byte (utf-16)
    except LookupError:
        return "utf-8"
    return name

"""The guarded GET's decisions, tested without connecting anywhere but 127.0.0.1.

Which addresses a fetch may connect to is decided on the resolved address: these tests
resolve (IP literals and `localhost`, which need no DNS server) and classify, and never
open a connection to what they classify. Redirect rules that need TLS to happen for real
(https -> http) are tested as the decision they are. The real GETs are in
tests/pipeline/test_hostile.py and test_fetch_activity.py.
"""

from __future__ import annotations

import gzip
import socket
import zlib

import pytest
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from {{ cookiecutter.package_name }}.runtime.http import (
    AddressRefusedError,
    Fetched,
    FetchFailure,
    FetchPolicy,
    GuardedHttp,
    PolicyResolver,
    address_refusal,
    parse_networks,
    redirect_refusal,
)

from ..toolkit.hostile_site import HostileSite, gzip_zeros

LOCAL = parse_networks(["127.0.0.1/32"])


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.0.0.1", "private"),
        ("192.168.1.1", "private"),
        ("172.16.0.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("100.64.0.1", "not a global address"),  # carrier-grade NAT
        ("127.0.0.2", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: judged as 127.0.0.1
        ("::ffff:169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (classified, not bound)
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "private"),  # documentation range
    ],
)
def test_special_addresses_are_refused(address: str, kind: str) -> None:
    refusal = address_refusal(address, ())
    assert refusal is not None
    assert kind in refusal, refusal


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_global_addresses_are_allowed(address: str) -> None:
    assert address_refusal(address, ()) is None  # classified only: never contacted


def test_the_allow_list_opens_exactly_its_networks() -> None:
    assert address_refusal("127.0.0.1", LOCAL) is None
    assert address_refusal("::ffff:127.0.0.1", LOCAL) is None  # the same address
    assert address_refusal("127.0.0.2", LOCAL) is not None
    assert address_refusal("::1", LOCAL) is not None
    private = parse_networks(["10.1.0.0/16"])
    assert address_refusal("10.1.2.3", private) is None
    assert address_refusal("10.2.0.1", private) is not None


def test_bad_networks_are_named() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        parse_networks(["10.0.0.0/33"])


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "100.64.0.1", "fe80::1", "127.1"]
)
async def test_the_resolver_refuses_a_host_that_resolves_to_a_special_address(host: str) -> None:
    """getaddrinfo of a literal (or legacy `127.1`) answers without DNS and connects nowhere."""
    resolver = PolicyResolver(())
    with pytest.raises(AddressRefusedError):
        await resolver.resolve(host, 80, family=socket.AF_UNSPEC)
    await resolver.close()


async def test_the_resolver_returns_only_checked_addresses() -> None:
    resolver = PolicyResolver(LOCAL + parse_networks(["::1/128"]))
    results = await resolver.resolve("localhost", 80, family=socket.AF_UNSPEC)  # /etc/hosts
    assert results
    assert {r["host"] for r in results} <= {"127.0.0.1", "::1"}
    await resolver.close()
    public = PolicyResolver(())
    resolved = await public.resolve("93.184.216.34", 80)  # resolved, never contacted
    assert [r["host"] for r in resolved] == ["93.184.216.34"]
    await public.close()


async def test_one_refused_address_refuses_the_whole_host() -> None:
    """A name resolving to a public and a private address (a DNS rebinding trick): refused,
    so no connection can fall back to the private one."""

    class TwoAddresses(ThreadedResolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            return [
                ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
                for a in ("93.184.216.34", "10.0.0.1")
            ]

    resolver = PolicyResolver(())
    resolver._inner = TwoAddresses()
    with pytest.raises(AddressRefusedError, match=r"resolves to 10\.0\.0\.1"):
        await resolver.resolve("rebinding.example", 80)


def test_https_to_http_is_refused() -> None:
    secure = URL("https://example.com/a")
    assert redirect_refusal(secure, URL("http://example.com/b")) == (
        "redirect from https to http refused"
    )
    assert redirect_refusal(secure, URL("https://example.com/b")) is None
    assert redirect_refusal(URL("http://example.com/a"), URL("https://example.com/b")) is None
    assert redirect_refusal(URL("http://example.com/a"), URL("ftp://example.com/b")) is not None


async def test_bad_urls_are_failures_before_any_connection() -> None:
    async with GuardedHttp(FetchPolicy()) as http:
        for url in ["http://xn--/x", "http://127.0.0.1:99999/x", "file:///etc/passwd", "http:///x"]:
            outcome = await http.get(url)
            assert isinstance(outcome, FetchFailure), url
            assert outcome.reason.startswith("bad URL"), outcome
            assert not outcome.transient


async def test_the_scheme_is_case_insensitive(hostile: HostileSite) -> None:
    async with GuardedHttp(FetchPolicy(allowed_networks=LOCAL)) as http:
        outcome = await http.get(hostile.url("good/upper").replace("http://", "HTTP://"))
    assert isinstance(outcome, Fetched), outcome
    assert outcome.body.startswith(b"document upper")


async def test_loopback_is_refused_by_default(hostile: HostileSite) -> None:
    """With no allow-list, even the test's own server on 127.0.0.1 is refused (and not hit)."""
    async with GuardedHttp(FetchPolicy()) as http:
        outcome = await http.get(hostile.url("good/refused-by-default"))
    assert isinstance(outcome, FetchFailure)
    assert outcome.reason == "address 127.0.0.1 is loopback, not allowed"
    # A name is checked on what it resolves to (localhost: /etc/hosts, no DNS server).
    async with GuardedHttp(FetchPolicy()) as http:
        by_name = await http.get(f"http://localhost:{hostile.port}/good/refused-by-default")
    assert isinstance(by_name, FetchFailure)
    assert by_name.reason.startswith("localhost resolves to "), by_name
    assert not by_name.transient
    assert hostile.hits["/good/refused-by-default"] == 0


@pytest.mark.parametrize("size", [0, 5, 1 << 20, (3 << 20) + 7])
def test_the_hostile_sites_bomb_is_a_valid_gzip_stream_of_zeros(size: int) -> None:
    """The bomb is made from one compressed MiB repeated (toolkit/hostile_site.py): a strict
    decoder, CRC and length checked, reads exactly `size` zeros from it."""
    bomb = gzip_zeros(size)
    assert gzip.decompress(bomb) == bytes(size)
    assert len(bomb) < 100 + size // 1000  # a bomb: about 1 KB per MiB it decodes to


async def test_deflate_is_decoded_and_bounded() -> None:
    """The decoder alone (a gzip body is tested against the hostile server)."""
    from {{ cookiecutter.package_name }}.runtime import http as guarded

    class Body:
        def __init__(self, data: bytes) -> None:
            self.data = data

        async def iter_chunked(self, size: int):  # type: ignore[no-untyped-def]
            for start in range(0, len(self.data), size):
                yield self.data[start : start + size]

    class Response:
        def __init__(self, data: bytes) -> None:
            self.headers = {"Content-Encoding": "deflate"}
            self.content = Body(data)

    text = b"words " * 1000
    assert await guarded._read_body(Response(zlib.compress(text)), 10_000) == text  # type: ignore[arg-type]
    with pytest.raises(guarded._RefusedError, match="body over 100 bytes decoded"):
        await guarded._read_body(Response(zlib.compress(text)), 100)  # type: ignore[arg-type]
    with pytest.raises(guarded._RefusedError, match="truncated"):
        await guarded._read_body(Response(zlib.compress(text)[:-8]), 10_000)  # type: ignore[arg-type]

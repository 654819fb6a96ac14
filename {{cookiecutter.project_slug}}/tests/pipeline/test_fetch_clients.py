"""The bench's httpx candidate (bench/fetch_clients.py) does what GuardedHttp does, URL by URL.

`python -m bench` compares the two clients' CPU and wall time inside the fetch activity; the
comparison means something only if both do the same work and give the same outcome: the same
body, or the same failure with the same reason and `transient` flag.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.fetch_clients import HttpxGuarded
from {{ cookiecutter.package_name }}.runtime.http import (
    Fetched,
    FetchFailure,
    FetchPolicy,
    GuardedHttp,
    HttpClientFactory,
    parse_networks,
)

from ..toolkit.hostile_site import SECOND_HOST, HostileSite
from ..toolkit.http_site import LocalSite, document_text

LOCAL = parse_networks(["127.0.0.1/32"])
MAX_BYTES = 1 << 20  # the hostile bomb decodes to 256 times that


async def outcome(client: HttpClientFactory, url: str, **limits: Any) -> Fetched | FetchFailure:
    fields: dict[str, Any] = {"max_bytes": MAX_BYTES, "allowed_networks": LOCAL}
    policy = FetchPolicy(**(fields | limits))
    async with client(policy, connections=2) as http:
        return await http.get(url)


async def both(url: str, **limits: Any) -> Fetched | FetchFailure:
    """The outcome of `url`, once it is certain both clients give exactly that one."""
    aiohttp_outcome = await outcome(GuardedHttp, url, **limits)
    httpx_outcome = await outcome(HttpxGuarded, url, **limits)
    assert httpx_outcome == aiohttp_outcome
    return aiohttp_outcome


@pytest.mark.parametrize(
    ("path", "name", "final"),
    [
        ("good/alpha", "alpha", "good/alpha"),
        ("gzip/beta", "beta", "gzip/beta"),  # decoded
        ("hops/5/gamma", "gamma", "good/gamma"),  # the URL after the redirects
    ],
)
async def test_the_same_bodies(hostile: HostileSite, path: str, name: str, final: str) -> None:
    fetched = await both(hostile.url(path))
    assert isinstance(fetched, Fetched), fetched
    assert fetched.body == document_text(name).encode()
    assert fetched.url == hostile.url(final)
    assert (fetched.encoding, fetched.content_type) == ("utf-8", "text/plain")


async def test_an_unknown_charset_is_read_as_utf8(hostile: HostileSite) -> None:
    fetched = await both(hostile.url("charset/delta"))
    assert isinstance(fetched, Fetched), fetched
    assert fetched.encoding == "utf-8"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("missing", "HTTP 404"),
        ("loop/0", "more than 5 redirects"),
        ("hops/6/epsilon", "more than 5 redirects"),
        ("to-other/zeta", f"address {SECOND_HOST} is loopback, not allowed"),
        ("fake-gzip/iota", "bad gzip body"),
        ("bomb", f"body over {MAX_BYTES} bytes decoded"),
        ("nested-bomb", "nested Content-Encoding 'gzip, gzip' refused"),
        ("brotli", "Content-Encoding 'br' not supported"),
    ],
)
async def test_the_same_failures(hostile: HostileSite, path: str, reason: str) -> None:
    failure = await both(hostile.url(path))
    assert isinstance(failure, FetchFailure), failure
    assert failure.reason.startswith(reason), failure
    assert not failure.transient


@pytest.mark.parametrize(("code", "transient"), [(404, False), (410, False), (503, True)])
async def test_the_same_status_failures(site: LocalSite, code: int, transient: bool) -> None:
    failure = await both(site.url(f"status/{code}"))
    assert isinstance(failure, FetchFailure), failure
    assert failure.status == code
    assert failure.transient is transient


async def test_the_same_refused_addresses_and_bad_urls(hostile: HostileSite) -> None:
    literal = f"http://[::ffff:{SECOND_HOST}]:{hostile.port}/good/theta"
    for url, reason in [
        (hostile.url("good/eta", host=SECOND_HOST), f"address {SECOND_HOST} is loopback"),
        (literal, f"address {SECOND_HOST} is loopback"),
        ("http://127.0.0.1:99999/x", "bad URL"),
        ("ftp://127.0.0.1/x", "bad URL: only http:// and https://"),
        ("not a url", "bad URL"),
    ]:
        failure = await both(url)
        assert isinstance(failure, FetchFailure), (url, failure)
        assert failure.reason.startswith(reason), (url, failure)
    assert hostile.hits["/good/eta"] == hostile.hits["/good/theta"] == 0  # never reached


async def test_the_same_deadline(hostile: HostileSite) -> None:
    """/slow sends a byte a second: the deadline, not the read timeout, ends it."""
    failure = await both(hostile.url("slow"), deadline_seconds=1, timeout_seconds=30)
    assert failure == FetchFailure("not done within 1s", transient=False)

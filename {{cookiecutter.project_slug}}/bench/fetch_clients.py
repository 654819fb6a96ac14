"""Which HTTP client the fetch activity uses, chosen by measurement (`python -m bench`).

Each candidate runs inside the real fetch activity (`FetchActivities(client=...)`, in the
SDK's ActivityEnvironment, bodies into a SQLite store) against bench/latency_server.py in a
process of its own, so this process's CPU time (`time.process_time`) is the client's and the
activity's, not the server's. Printed per client and concurrency: CPU per request, wall time,
the ideal time (latency x ceil(URLs / concurrency)) and wall / ideal.

`HttpxGuarded` is the httpx candidate: the same FetchPolicy, the same URL checks, redirects,
bounded decoding (the runtime's own helpers) and the same failures as GuardedHttp, so the two
do the same work per URL. tests/pipeline/test_fetch_clients.py holds it to that.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
from temporalio.testing import ActivityEnvironment

from {{ cookiecutter.package_name }}.pipeline.activities.fetch import (
    FetchActivities,
)
from {{ cookiecutter.package_name }}.pipeline.models import (
    FetchRequest,
)
from {{ cookiecutter.package_name }}.runtime.http import (
    CHUNK,
    REDIRECT_STATUS,
    RETRYABLE_STATUS,
    Fetched,
    FetchFailure,
    FetchPolicy,
    GuardedHttp,
    HttpClientFactory,
    _check_literal,
    _checked_url,
    _decode_body,
    _known_charset,
    _next_hop,
    _RefusedError,
    parse_networks,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    SqliteStateStore,
)


class HttpxGuarded:
    """GuardedHttp's GET on httpx, for the bench; use it as `async with`.

    What it cannot do that GuardedHttp does: httpx has no resolver hook, so the addresses a
    host *name* resolves to are not checked (an IP literal is, at every hop, with
    `address_refusal`); a name pointing at 10.0.0.1 or 169.254.169.254 would be fetched.
    Closing that gap takes a custom httpcore network backend (resolve, check, connect to the
    checked address) under a hand-built transport: not worth it unless httpx wins.
    """

    def __init__(self, policy: FetchPolicy, *, connections: int = 10) -> None:
        self.policy = policy
        self._connections = connections
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        timeout = self.policy.timeout_seconds
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=self._connections, max_keepalive_connections=self._connections
            ),
            # Connect and each read (as GuardedHttp); waiting for a pooled connection is
            # bounded by the deadline only, as in aiohttp.
            timeout=httpx.Timeout(connect=timeout, read=timeout, write=timeout, pool=None),
            follow_redirects=False,  # by hand, each hop checked
            trust_env=False,  # no proxy from the environment
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),  # keeps none
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def get(self, url: str) -> Fetched | FetchFailure:
        """GET `url`: the body, or why not, with GuardedHttp's reasons and `transient` flags."""
        deadline = self.policy.deadline_seconds
        whole_url = asyncio.timeout(deadline)
        try:
            async with whole_url:
                return await self._get(url)
        except _RefusedError as refused:
            return FetchFailure(str(refused), refused.transient, refused.status)
        except (TimeoutError, httpx.TimeoutException):
            if whole_url.expired():
                return FetchFailure(f"not done within {deadline:g}s", transient=False)
            return FetchFailure(f"timed out after {self.policy.timeout_seconds:g}s", transient=True)
        except httpx.ConnectError as exc:
            return FetchFailure(f"cannot connect: {exc}", transient=True)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return FetchFailure(f"bad URL: {exc}", transient=False)
        except (httpx.HTTPError, OSError) as exc:
            return FetchFailure(f"{type(exc).__name__}: {exc}", transient=True)
        except Exception as exc:  # anything else is this URL's failure, never the batch's
            return FetchFailure(f"{type(exc).__name__}: {exc}", transient=False)

    async def _get(self, url: str) -> Fetched:
        if self._client is None:
            raise RuntimeError("use HttpxGuarded as `async with HttpxGuarded(policy) as http`")
        target = _checked_url(url)  # parsed by yarl, as GuardedHttp does: the same URLs pass
        for _hop in range(self.policy.max_redirects + 1):
            _check_literal(target, self.policy.allowed_networks)
            async with self._client.stream("GET", str(target)) as response:
                status = response.status_code
                if status in REDIRECT_STATUS:
                    target = _next_hop(target, response.headers.get("Location"))
                    continue
                if status in RETRYABLE_STATUS:
                    raise _RefusedError(f"HTTP {status}", transient=True, status=status)
                if not 200 <= status < 300:
                    reason = f"HTTP {status} {response.reason_phrase or ''}".strip()
                    raise _RefusedError(reason, status=status)
                body = await _decode_body(
                    response.headers.get("Content-Encoding"),
                    response.aiter_raw(CHUNK),  # not decoded by httpx: bounded here
                    self.policy.max_bytes,
                )
                content_type = response.headers.get("Content-Type", "application/octet-stream")
                return Fetched(
                    url=str(target),
                    status=status,
                    body=body,
                    encoding=_known_charset(response.charset_encoding),
                    content_type=content_type.split(";", 1)[0].strip().lower(),
                )
        raise _RefusedError(f"more than {self.policy.max_redirects} redirects")


CLIENTS: dict[str, HttpClientFactory] = {"aiohttp": GuardedHttp, "httpx": HttpxGuarded}
LATENCY_MS = 50
URLS = 1000
"""At 50 ms, ideal 1 s at concurrency 50 (20 rounds) and 5 s at 10: long enough to measure."""
CONCURRENCIES = (10, 50)
REPEATS = 3
TARGET_RATIO = 1.2  # wall / ideal at concurrency 50


@dataclass(frozen=True)
class Measure:
    wall: float
    cpu: float


@contextmanager
def latency_server(milliseconds: int) -> Iterator[str]:
    """bench/latency_server.py in a process of its own: its base URL, while it runs."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.latency_server", str(milliseconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait()


async def fetch_run(
    directory: Path, client: HttpClientFactory, concurrency: int, urls: list[str]
) -> Measure:
    """One run of the real fetch activity over `urls` on a fresh store."""
    path = directory / f"fetch-{time.monotonic_ns()}.db"
    async with SqliteStateStore(path) as store:
        # The local site is on loopback, which the guarded GET refuses unless allowed.
        policy = FetchPolicy(
            timeout_seconds=10, max_bytes=10**6, allowed_networks=parse_networks(["127.0.0.1/32"])
        )
        activities = FetchActivities(
            store, policy=policy, concurrency=concurrency, retries=0, client=client
        )
        request = FetchRequest(urls=urls, documents_key="documents:bench")
        cpu, wall = time.process_time(), time.perf_counter()
        summary = await ActivityEnvironment().run(activities.fetch_documents, request)
        measure = Measure(wall=time.perf_counter() - wall, cpu=time.process_time() - cpu)
    assert summary.fetched == len(urls), summary
    return measure


def row(name: str, value: str, note: str = "") -> None:
    print(f"  {name:<38} {value:>12}  {note}")


async def compare_clients(directory: Path) -> dict[tuple[str, int], Measure]:
    """Every client at every concurrency, interleaved, best of REPEATS; prints the table."""
    print(
        f"\nFetch clients (the fetch activity, {URLS} URLs, {LATENCY_MS} ms latency each, "
        "server in its own process; CPU is this process's)"
    )
    latency = LATENCY_MS / 1000
    runs: dict[tuple[str, int], list[Measure]] = {}
    with latency_server(LATENCY_MS) as base_url:
        for repeat in range(REPEATS):  # interleaved, so drift on a busy machine hits all
            for concurrency in CONCURRENCIES:
                for name, client in CLIENTS.items():
                    tag = f"{name}-{concurrency}-{repeat}"
                    urls = [f"{base_url}/{tag}-{i}" for i in range(URLS)]
                    measure = await fetch_run(directory, client, concurrency, urls)
                    runs.setdefault((name, concurrency), []).append(measure)
    best = {
        key: Measure(wall=min(m.wall for m in ms), cpu=min(m.cpu for m in ms))
        for key, ms in runs.items()
    }
    for concurrency in CONCURRENCIES:
        ideal = latency * math.ceil(URLS / concurrency)
        for name in CLIENTS:
            measure = best[name, concurrency]
            target = f" (target <= {TARGET_RATIO})" if concurrency == max(CONCURRENCIES) else ""
            row(
                f"{name} concurrency={concurrency}",
                f"{measure.wall:.2f}s",
                f"CPU {1000 * measure.cpu / URLS:.3f} ms/request, ideal {ideal:.2f}s, "
                f"ratio {measure.wall / ideal:.2f}{target}",
            )
    for concurrency in CONCURRENCIES:
        aio, hx = best["aiohttp", concurrency], best["httpx", concurrency]
        row(
            f"httpx / aiohttp, concurrency={concurrency}",
            f"CPU {hx.cpu / aio.cpu:.2f}x",
            f"wall {hx.wall / aio.wall:.2f}x",
        )
    return best

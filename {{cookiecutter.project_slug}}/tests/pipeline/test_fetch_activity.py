"""The fetch activity against a real local HTTP server, in the SDK's ActivityEnvironment."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import socket
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from {{ cookiecutter.package_name }}.pipeline.activities.fetch import (
    FetchActivities,
)
from {{ cookiecutter.package_name }}.pipeline.models import (
    FetchRequest,
    FetchResult,
    body_key,
)
from {{ cookiecutter.package_name }}.runtime.http import (
    FetchPolicy,
    parse_networks,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
)

from ..toolkit.http_site import LocalSite, document_text


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about fetching, not the store (test_store.py runs both)."""
    return f"sqlite:///{tmp_path / 'state.db'}"


LOCAL_SITE = parse_networks(["127.0.0.1/32"])  # the test site; nothing else is allowed


GUARD_SECONDS = 60.0  # ends a broken test; no speed makes a test pass or fail
HELD = 300.0  # the fetch timeout where requests are held: never reached while held


def fetcher(
    store: StateStore, *, concurrency: int = 5, retries: int = 0, **limits: Any
) -> FetchActivities:
    """The activity with the test site allowed; `limits` override FetchPolicy's fields."""
    fields: dict[str, Any] = {
        "timeout_seconds": 5.0,
        "deadline_seconds": HELD,
        "max_bytes": 1_000_000,
        "allowed_networks": LOCAL_SITE,
    }
    policy = FetchPolicy(**(fields | limits))
    return FetchActivities(store, policy=policy, concurrency=concurrency, retries=retries)


async def fetch(activities: FetchActivities, store: StateStore, urls: list[str]) -> FetchResult:
    """Run the activity; return the lists it stored, after checking its counts agree."""
    request = FetchRequest(urls=urls, documents_key="documents:test")
    summary = await ActivityEnvironment().run(activities.fetch_documents, request)
    stored = await store.get(request.documents_key)
    assert stored is not None
    result = FetchResult.model_validate_json(stored)
    assert (summary.fetched, summary.failed) == (len(result.documents), len(result.failed))
    assert summary.bytes == sum(d.bytes for d in result.documents)
    assert summary.words == sum(d.words for d in result.documents)
    return result


async def test_urls_can_be_staged_in_the_store(store: StateStore, site: LocalSite) -> None:
    urls = [site.url("doc/staged-one"), site.url("doc/staged-two")]
    await store.put_json("input:test:000000", urls)
    request = FetchRequest(urls_key="input:test:000000", documents_key="documents:staged")
    summary = await ActivityEnvironment().run(fetcher(store).fetch_documents, request)
    assert (summary.fetched, summary.failed) == (2, 0)
    stored = await store.get(request.documents_key)
    assert stored is not None
    assert [d.url for d in FetchResult.model_validate_json(stored).documents] == urls


async def test_documents_are_stored_and_referenced(store: StateStore, site: LocalSite) -> None:
    urls = [site.url("doc/alpha"), site.url("doc/beta")]
    result = await fetch(fetcher(store), store, urls)

    assert [d.url for d in result.documents] == urls
    assert result.failed == []
    for doc, name in zip(result.documents, ["alpha", "beta"], strict=True):
        body = document_text(name).encode()
        assert doc.sha256 == hashlib.sha256(body).hexdigest()
        assert (doc.bytes, doc.words) == (len(body), 7)
        assert await store.get(body_key(doc.sha256)) == body


async def test_permanent_failures_are_reported_not_raised(
    store: StateStore, site: LocalSite
) -> None:
    urls = [site.url("status/404"), site.url("status/403"), "ftp://example.com/x", "not a url"]
    urls.append(site.url("doc/fine"))
    result = await fetch(fetcher(store), store, urls)

    assert [d.url for d in result.documents] == [site.url("doc/fine")]
    reasons = {f.url: f.reason for f in result.failed}
    assert reasons[site.url("status/404")] == "HTTP 404 Not Found"
    assert reasons[site.url("status/403")] == "HTTP 403 Forbidden"
    assert reasons["ftp://example.com/x"].startswith("bad URL")
    assert reasons["not a url"].startswith("bad URL")


def unique(group: str) -> str:
    """A group name of this run only: the site (and its gates) serve the whole session."""
    return f"{group}{uuid.uuid4().hex[:8]}"


async def wait_in_flight(site: LocalSite, group: str, count: int) -> None:
    """Wait until `count` requests of `group` are at the site (held there by the test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD_SECONDS
    while site.in_flight[group] < count:
        assert loop.time() < deadline, f"{site.in_flight[group]} of {count} requests came"
        await asyncio.sleep(0.02)


async def stopped(task: asyncio.Task[Any]) -> None:
    """Make sure `task` has ended (cancelled if need be): a failed test leaves nothing running."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def test_a_slow_url_times_out(store: StateStore, site: LocalSite) -> None:
    late = unique("late")
    url = site.url(f"gate/{late}")  # never answered while the test runs: certainly too late
    activities = fetcher(store, timeout_seconds=0.2)
    try:
        result = await fetch(activities, store, [url])
    finally:
        site.open_gate(late)
    assert result.documents == []
    assert [(f.url, f.reason) for f in result.failed] == [(url, "timed out after 0.2s")]


async def test_transient_failures_are_retried(store: StateStore, site: LocalSite) -> None:
    recovers = site.url("flaky/2/recovers")  # 503, 503, then 200
    gives_up = site.url("flaky/9/gives-up")
    activities = fetcher(store, retries=2)
    result = await fetch(activities, store, [recovers, gives_up])
    assert [d.url for d in result.documents] == [recovers]
    assert [(f.url, f.reason) for f in result.failed] == [(gives_up, "HTTP 503 (after 3 tries)")]
    assert site.hits["/flaky/2/recovers"] == 3
    assert site.hits["/flaky/9/gives-up"] == 3


async def test_a_refused_connection_is_reported(store: StateStore) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/x"
    result = await fetch(fetcher(store), store, [url])
    assert [f.url for f in result.failed] == [url]
    assert result.failed[0].reason.startswith("cannot connect"), result.failed


async def test_concurrency_is_bounded(store: StateStore, site: LocalSite) -> None:
    group = unique("bounded")
    # Each request is answered only once 3 of them are at the site together
    # (tests/toolkit/http_site.py, /hold): the activity completes only if it really runs 3 at once.
    urls = [site.url(f"hold/3/{group}-{i}") for i in range(12)]
    activities = fetcher(store, concurrency=3, timeout_seconds=HELD)
    result = await fetch(activities, store, urls)
    assert len(result.documents) == 12, result.failed
    # Exactly 3: never more than the bound, and really concurrent up to it.
    assert site.max_in_flight[group] == 3


async def test_heartbeats_report_progress(store: StateStore, site: LocalSite) -> None:
    group = unique("progress")
    names = [f"{group}-{i}" for i in range(4)]
    env = ActivityEnvironment()  # heartbeats every 0.1 s (a quarter of the timeout)
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=0.4))
    beats: list[int] = []
    beating, progressed = asyncio.Event(), asyncio.Event()

    def on_heartbeat(*details: Any) -> None:
        beats.append(details[0])
        beating.set()
        if details[0] > 0:
            progressed.set()

    env.on_heartbeat = on_heartbeat
    request = FetchRequest(urls=[site.url(f"gate/{n}") for n in names], documents_key="d:test")
    running = asyncio.create_task(
        env.run(fetcher(store, timeout_seconds=HELD).fetch_documents, request)
    )
    try:
        await wait_in_flight(site, group, 4)  # all held: nothing is done yet
        await asyncio.wait_for(beating.wait(), timeout=GUARD_SECONDS)
        site.open_gate(names[0])
        # One done, three held: the activity is certainly still running at this heartbeat.
        await asyncio.wait_for(progressed.wait(), timeout=GUARD_SECONDS)
        assert not running.done()
        for name in names[1:]:
            site.open_gate(name)
        summary = await asyncio.wait_for(running, timeout=GUARD_SECONDS)
    finally:
        for name in names:
            site.open_gate(name)
        await stopped(running)
    assert summary.fetched == 4
    assert beats[0] == 0
    assert beats == sorted(beats)
    assert 0 < max(beats) <= 4


async def test_cancellation_stops_the_downloads(store: StateStore, site: LocalSite) -> None:
    group = unique("cancelled")
    names = [f"{group}-{i}" for i in range(3)]
    env = ActivityEnvironment()
    request = FetchRequest(urls=[site.url(f"gate/{n}") for n in names], documents_key="d:test")
    running = asyncio.create_task(
        env.run(fetcher(store, timeout_seconds=HELD).fetch_documents, request)
    )
    try:
        await wait_in_flight(site, group, 3)  # every download held at the site, unanswered
        env.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(running, timeout=GUARD_SECONDS)  # a guard, not a speed
        # It ended while every request was still held: by the cancellation, not by an answer
        # or a timeout. (The site's handlers wait for their gates whatever the client does.)
        assert site.in_flight[group] == 3
        assert [site.hits[f"/gate/{n}"] for n in names] == [1, 1, 1]
    finally:
        for name in names:
            site.open_gate(name)
        await stopped(running)
    assert await store.get(request.documents_key) is None  # nothing stored as if it finished


async def test_a_body_over_the_limit_is_refused(store: StateStore, site: LocalSite) -> None:
    url = site.url("doc/too-big")
    activities = fetcher(store, max_bytes=10)
    result = await fetch(activities, store, [url])
    assert [(f.url, f.reason) for f in result.failed] == [(url, "body over 10 bytes")]

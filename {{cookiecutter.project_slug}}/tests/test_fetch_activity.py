"""The fetch activity against a real local HTTP server, in the SDK's ActivityEnvironment."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from {{ cookiecutter.package_name }}.activities.fetch import (
    FetchActivities,
)
from {{ cookiecutter.package_name }}.models import (
    FetchRequest,
    FetchResult,
    body_key,
)
from {{ cookiecutter.package_name }}.store import (
    StateStore,
)

from .http_site import LocalSite, document_text


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about fetching, not the store (test_store.py runs both)."""
    return f"sqlite:///{tmp_path / 'state.db'}"


def fetcher(store: StateStore, **overrides: Any) -> FetchActivities:
    options: dict[str, Any] = {
        "concurrency": 5,
        "timeout_seconds": 5.0,
        "retries": 0,
        "max_bytes": 1_000_000,
    }
    options.update(overrides)
    return FetchActivities(store, **options)


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


async def test_a_slow_url_times_out(store: StateStore, site: LocalSite) -> None:
    url = site.url("slow/3000/late")
    activities = fetcher(store, timeout_seconds=0.2)
    result = await fetch(activities, store, [url])
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
    assert result.failed[0].reason.startswith("ConnectError")


async def test_concurrency_is_bounded(store: StateStore, site: LocalSite) -> None:
    urls = [site.url(f"slow/200/bounded-{i}") for i in range(12)]
    activities = fetcher(store, concurrency=3)
    result = await fetch(activities, store, urls)
    assert len(result.documents) == 12
    # Exactly 3: never more than the bound, and really concurrent up to it.
    assert site.max_in_flight["bounded"] == 3


async def test_heartbeats_report_progress(store: StateStore, site: LocalSite) -> None:
    urls = [site.url(f"slow/400/progress-{i}") for i in range(4)]
    env = ActivityEnvironment()
    beats: list[int] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    await env.run(
        fetcher(store, concurrency=1).fetch_documents,
        FetchRequest(urls=urls, documents_key="documents:test"),
    )
    assert beats[0] == 0
    assert beats == sorted(beats)
    assert 0 < max(beats) <= 4


async def test_cancellation_stops_the_downloads(store: StateStore, site: LocalSite) -> None:
    urls = [site.url(f"slow/5000/cancelled-{i}") for i in range(3)]
    env = ActivityEnvironment()
    started = asyncio.Event()
    env.on_heartbeat = lambda *details: started.set()
    running = asyncio.create_task(
        env.run(
            fetcher(store).fetch_documents, FetchRequest(urls=urls, documents_key="documents:test")
        )
    )
    await asyncio.wait_for(started.wait(), timeout=5)
    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert loop.time() - cancelled_at < 2.0


async def test_a_body_over_the_limit_is_refused(store: StateStore, site: LocalSite) -> None:
    url = site.url("doc/too-big")
    activities = fetcher(store, max_bytes=10)
    result = await fetch(activities, store, [url])
    assert [(f.url, f.reason) for f in result.failed] == [(url, "body over 10 bytes")]

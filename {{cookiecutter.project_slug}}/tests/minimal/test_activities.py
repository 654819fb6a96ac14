"""The minimal sample's activities against a real local HTTP server, a real store and a real
process pool, in the SDK's ActivityEnvironment."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from {{ cookiecutter.package_name }}.minimal.activities import (
    STATS_VERSION,
    DownloadActivities,
    StatsActivities,
    StatsState,
)
from {{ cookiecutter.package_name }}.minimal.models import (
    ComputeRequest,
    PageStats,
    text_key,
)
from {{ cookiecutter.package_name }}.minimal.textstats import (
    page_stats,
)
from {{ cookiecutter.package_name }}.runtime.checkpoint import (
    Checkpoint,
    activity_checkpoint_key,
)
from {{ cookiecutter.package_name }}.runtime.http import (
    FetchPolicy,
    parse_networks,
)
from {{ cookiecutter.package_name }}.runtime.memo import (
    memo_key,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
)

from ..toolkit.hostile_site import SECOND_HOST, HostileSite
from ..toolkit.http_site import LocalSite, document_text, random_words
from ..toolkit.processes import TEST_NETWORKS


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about the activities, not the store."""
    return f"sqlite:///{tmp_path / 'state.db'}"


def downloader(
    store: StateStore, *, concurrency: int = 5, max_bytes: int = 100_000
) -> DownloadActivities:
    """The activity with the tests' servers (127.0.0.1 only) allowed."""
    policy = FetchPolicy(
        timeout_seconds=30.0,
        deadline_seconds=60.0,
        max_bytes=max_bytes,
        allowed_networks=parse_networks([TEST_NETWORKS]),
    )
    return DownloadActivities(store, policy=policy, concurrency=concurrency)


def computer(store: StateStore, pool: CpuPool, *, every_items: int = 2) -> StatsActivities:
    return StatsActivities(
        store,
        pool,
        checkpoint_every_items=every_items,
        checkpoint_every_seconds=3600.0,  # saves by count only: deterministic
        memo_ttl_seconds=3600.0,
    )


async def stored_bodies(store: StateStore, count: int, tag: str) -> list[tuple[str, str]]:
    """`count` bodies in the store as download_pages leaves them: (sha256, text)."""
    bodies = []
    for i in range(count):
        text = random_words(150, f"{tag}-{i}")
        sha256 = hashlib.sha256(text.encode()).hexdigest()
        await store.put(text_key(sha256), text.encode())
        bodies.append((sha256, text))
    return bodies


async def test_pages_are_stored_and_failures_reported(store: StateStore, site: LocalSite) -> None:
    urls = [site.url("doc/one"), site.url("status/404"), "ftp://example.com/x", site.url("doc/two")]
    pages = await ActivityEnvironment().run(downloader(store).download_pages, urls)

    assert [page.url for page in pages] == urls  # in the order given
    for page, name in ((pages[0], "one"), (pages[3], "two")):
        body = document_text(name).encode()
        assert (page.sha256, page.size, page.error) == (
            hashlib.sha256(body).hexdigest(),
            len(body),
            None,
        )
        assert await store.get(text_key(hashlib.sha256(body).hexdigest())) == body
    assert (pages[1].sha256, pages[1].error) == (None, "HTTP 404 Not Found")
    assert pages[2].sha256 is None
    assert pages[2].error is not None
    assert pages[2].error.startswith("bad URL")


async def test_a_page_over_the_limit_is_refused(store: StateStore, site: LocalSite) -> None:
    (page,) = await ActivityEnvironment().run(
        downloader(store, max_bytes=100).download_pages, [site.url("words/500/big")]
    )
    assert (page.sha256, page.error) == (None, "body over 100 bytes")


async def test_hostile_pages_fail_alone(store: StateStore, hostile: HostileSite) -> None:
    """A decompression bomb and a redirect to an address the allow-list leaves out (127.0.0.2)
    are those pages' errors; the page between them is downloaded."""
    urls = [hostile.url("bomb"), hostile.url("good/between"), hostile.url("to-other/away")]
    pages = await ActivityEnvironment().run(downloader(store).download_pages, urls)
    assert [page.error for page in pages] == [
        "body over 100000 bytes decoded",
        None,
        f"address {SECOND_HOST} is loopback, not allowed",
    ]
    assert pages[1].size == len(document_text("between").encode())
    assert hostile.hits["/good/away"] == 0  # the redirect was never followed


async def test_downloads_run_concurrently_up_to_the_bound(
    store: StateStore, site: LocalSite
) -> None:
    # /hold/3/... answers only when 3 requests of the group wait together: the activity
    # finishes only if it really keeps 3 in flight; the site records that it never had more.
    group = f"bound{uuid.uuid4().hex[:8]}"
    urls = [site.url(f"hold/3/{group}-{i}") for i in range(9)]
    pages = await ActivityEnvironment().run(downloader(store, concurrency=3).download_pages, urls)
    assert all(page.error is None for page in pages), pages
    assert site.max_in_flight[group] == 3


async def test_stats_are_computed_on_the_pool_and_memoized(
    store: StateStore, pool: CpuPool
) -> None:
    bodies = await stored_bodies(store, 5, f"memo{uuid.uuid4().hex[:8]}")
    request = ComputeRequest(sha256s=[sha for sha, _ in bodies], rounds=2)
    first = await ActivityEnvironment().run(computer(store, pool).compute_stats, request)
    assert first == {sha: PageStats.of(page_stats(text, 2)) for sha, text in bodies}
    for sha, _ in bodies:
        assert await store.get_json(memo_key("page_stats", STATS_VERSION, sha, 2)) is not None

    # A second run finds every result memoized: with the bodies gone, it could not compute.
    for sha, _ in bodies:
        await store.delete(text_key(sha))
    again = await ActivityEnvironment().run(computer(store, pool).compute_stats, request)
    assert again == first


async def test_a_bad_memo_entry_is_recomputed(store: StateStore, pool: CpuPool) -> None:
    ((sha, text),) = await stored_bodies(store, 1, f"bad{uuid.uuid4().hex[:8]}")
    await store.put_json(memo_key("page_stats", STATS_VERSION, sha, 2), {"words": "many"})
    request = ComputeRequest(sha256s=[sha], rounds=2)
    result = await ActivityEnvironment().run(computer(store, pool).compute_stats, request)
    assert result == {sha: PageStats.of(page_stats(text, 2))}


async def test_another_pages_memo_entry_is_never_used(store: StateStore, pool: CpuPool) -> None:
    """An entry holds the key it was stored under: one page's statistics copied over
    another's key are a miss, and the page's own are computed."""
    (one, text_one), (two, _) = await stored_bodies(store, 2, f"swap{uuid.uuid4().hex[:8]}")
    request = ComputeRequest(sha256s=[one, two], rounds=2)
    await ActivityEnvironment().run(computer(store, pool).compute_stats, request)
    key_one = memo_key("page_stats", STATS_VERSION, one, 2)
    key_two = memo_key("page_stats", STATS_VERSION, two, 2)
    await store.put(key_one, await store.get(key_two) or b"")  # the other page's result
    again = await ActivityEnvironment().run(computer(store, pool).compute_stats, request)
    assert again[one] == PageStats.of(page_stats(text_one, 2))


async def test_an_altered_body_is_never_used(store: StateStore, pool: CpuPool) -> None:
    """Bodies are checked against their SHA-256 on read: one altered in the store fails the
    activity as MissingBody, not retried (the workflow downloads again)."""
    ((sha, _),) = await stored_bodies(store, 1, f"altered{uuid.uuid4().hex[:8]}")
    await store.put(text_key(sha), b"another page altogether")
    request = ComputeRequest(sha256s=[sha], rounds=2)
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(computer(store, pool).compute_stats, request)
    assert (failed.value.type, failed.value.non_retryable) == ("MissingBody", True)


async def test_a_checkpoint_of_other_pages_is_ignored(store: StateStore, pool: CpuPool) -> None:
    ((sha, text),) = await stored_bodies(store, 1, f"foreign{uuid.uuid4().hex[:8]}")
    env = ActivityEnvironment()
    foreign = StatsState(stats={"f" * 64: PageStats.of(page_stats("not this page", 2))})
    checkpoint = Checkpoint(
        store, activity_checkpoint_key(env.info), StatsState, every_items=1, every_seconds=1
    )
    await checkpoint.save(foreign)
    request = ComputeRequest(sha256s=[sha], rounds=2)
    result = await env.run(computer(store, pool).compute_stats, request)
    assert result == {sha: PageStats.of(page_stats(text, 2))}


async def test_a_retry_resumes_from_the_checkpoint(store: StateStore, pool: CpuPool) -> None:
    """An attempt finds the checkpoint of an earlier one and computes only what is missing."""
    bodies = await stored_bodies(store, 4, f"resume{uuid.uuid4().hex[:8]}")
    env = ActivityEnvironment()
    key = activity_checkpoint_key(env.info)
    done = {sha: PageStats.of(page_stats(text, 2)) for sha, text in bodies[:3]}
    checkpoint = Checkpoint(store, key, StatsState, every_items=1, every_seconds=3600)
    await checkpoint.save(StatsState(stats=done))
    for sha, _ in bodies[:3]:
        await store.delete(text_key(sha))  # had it recomputed them, these would be missing

    request = ComputeRequest(sha256s=[sha for sha, _ in bodies], rounds=2)
    result = await env.run(computer(store, pool).compute_stats, request)
    assert result == {sha: PageStats.of(page_stats(text, 2)) for sha, text in bodies}
    assert await store.get(key) is None  # done: the checkpoint is cleared

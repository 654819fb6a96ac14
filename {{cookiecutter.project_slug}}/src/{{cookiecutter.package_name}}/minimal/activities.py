"""The minimal sample's two activities: async I/O, then CPU work on every core.

`download_pages` keeps up to `concurrency` requests in flight on the worker's event loop
(no threads: waiting on the network needs none) and puts each body in the state store.
A URL that fails is reported in its `Page`, never fails the others.

`compute_stats` sends each body to the process pool (pure Python holds the GIL, so only
processes use every core), memoizes results by content and checkpoints what it has, so
an attempt after a crash (kill -9, a deleted pod) computes only what is missing.
"""

from __future__ import annotations

import asyncio
import hashlib

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ..runtime.checkpoint import Checkpoint
from ..runtime.heartbeat import heartbeat_until_cancelled
from ..runtime.http import FetchFailure, FetchPolicy, GuardedHttp
from ..runtime.memo import Memo, memo_key
from ..runtime.pool import CpuPool
from ..runtime.store import StateStore
from .models import DATA_TTL_SECONDS, ComputeRequest, Page, PageStats, text_key
from .textstats import page_stats

STATS_VERSION = 1  # bump when `page_stats` changes its results: old memo entries stop matching


class DownloadActivities:
    """The download activity, with its store and limits injected (see app.py)."""

    def __init__(self, store: StateStore, *, policy: FetchPolicy, concurrency: int) -> None:
        self.store = store
        self.policy = policy
        self.concurrency = concurrency

    @activity.defn(name="download_pages")
    async def download_pages(self, urls: list[str]) -> list[Page]:
        """Download every URL, at most `concurrency` at once; bodies go to the state store."""
        done = 0
        semaphore = asyncio.Semaphore(self.concurrency)
        heartbeats = asyncio.create_task(
            heartbeat_until_cancelled(lambda: {"done": done, "total": len(urls)})
        )

        async def one(http: GuardedHttp, url: str) -> Page:
            nonlocal done
            async with semaphore:
                page = await self._download(http, url)
            done += 1
            return page

        try:
            # The guarded GET (runtime/http.py) never raises for a URL: a bad one is a Page
            # with its error, whatever it did (bad address, redirect loop, bomb, slow body).
            async with GuardedHttp(self.policy, connections=self.concurrency) as http:
                return list(await asyncio.gather(*(one(http, url) for url in urls)))
        finally:
            heartbeats.cancel()

    async def _download(self, http: GuardedHttp, url: str) -> Page:
        outcome = await http.get(url)
        if isinstance(outcome, FetchFailure):
            return Page(url=url, error=outcome.reason)
        sha256 = hashlib.sha256(outcome.body).hexdigest()
        await self.store.put(text_key(sha256), outcome.body, ttl_seconds=DATA_TTL_SECONDS)
        return Page(url=url, sha256=sha256, size=len(outcome.body))


class StatsState(BaseModel):
    """What a checkpoint holds: the statistics computed so far, by body SHA-256."""

    stats: dict[str, PageStats] = {}


class StatsActivities:
    """The CPU activity, with its store, pool and checkpoint policy injected (see app.py)."""

    def __init__(
        self,
        store: StateStore,
        pool: CpuPool,
        *,
        checkpoint_every_items: int,
        checkpoint_every_seconds: float,
        memo_ttl_seconds: float,
    ) -> None:
        self.store = store
        self.pool = pool
        self.checkpoint_every_items = checkpoint_every_items
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.memo = Memo(store, ttl_seconds=memo_ttl_seconds)

    @activity.defn(name="compute_stats")
    async def compute_stats(self, request: ComputeRequest) -> dict[str, PageStats]:
        """Statistics of every body, on all cores; resumes from its checkpoint."""
        checkpoint = Checkpoint.for_current_activity(
            self.store,
            StatsState,
            every_items=self.checkpoint_every_items,
            every_seconds=self.checkpoint_every_seconds,
            ttl_seconds=DATA_TTL_SECONDS,
        )
        wanted = list(dict.fromkeys(request.sha256s))

        def check(saved: StatsState) -> None:  # a checkpoint of these bodies, no others
            if not saved.stats.keys() <= set(wanted):
                raise ValueError("statistics of bodies that are not in this request")

        state = await checkpoint.load(check) or StatsState()
        todo = [sha256 for sha256 in wanted if sha256 not in state.stats]
        limit = asyncio.Semaphore(self.pool.processes * 2)  # every process busy, little queued

        async def one(sha256: str) -> None:
            async with limit:
                state.stats[sha256] = await self._stats(sha256, request.rounds)
            await checkpoint.maybe_save(state)

        heartbeats = asyncio.create_task(
            heartbeat_until_cancelled(lambda: {"done": len(state.stats), "total": len(wanted)})
        )
        try:
            async with asyncio.TaskGroup() as group:
                for sha256 in todo:
                    group.create_task(one(sha256))
        except asyncio.CancelledError:
            await asyncio.shield(checkpoint.save(state))  # the next attempt starts from here
            raise
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None  # its own type and message, for the history
        finally:
            heartbeats.cancel()
        await checkpoint.clear()
        return {sha256: state.stats[sha256] for sha256 in wanted}

    async def _stats(self, sha256: str, rounds: int) -> PageStats:
        key = memo_key("page_stats", STATS_VERSION, sha256, rounds)
        cached = await self.memo.get(key, PageStats.model_validate)  # checked, or None
        if cached is not None:
            return cached
        body = await self.store.get_verified(text_key(sha256), sha256)  # None if altered
        if body is None:  # download_pages stored it: the store lost it, or it was altered
            raise ApplicationError(
                f"body {sha256} is missing from the state store, or is not that content",
                type="MissingBody",
                non_retryable=True,  # the same read would fail again: the workflow downloads again
            )
        text = body.decode("utf-8", errors="replace")
        stats = PageStats.of(await self.pool.run(page_stats, text, rounds))
        await self.memo.put(key, stats.model_dump(mode="json"))
        return stats

"""Module 2, solved: up to LIMIT downloads in flight, sizes in the order of the URLs."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import httpx

# Most downloads in flight at once (the service's setting is FETCH_CONCURRENCY).
LIMIT = 8


@activity.defn
async def fetch_sizes(urls: list[str]) -> list[int]:
    """The size in bytes of each URL's body, in the order of `urls`."""
    slots = asyncio.Semaphore(LIMIT)

    async with httpx.AsyncClient(timeout=10) as client:

        async def size_of(url: str) -> int:
            async with slots:  # the LIMIT+1st download waits here for a free slot
                response = await client.get(url)
            response.raise_for_status()
            activity.heartbeat()
            return len(response.content)

        # One task per URL; gather returns the results in the order of its arguments.
        return await asyncio.gather(*(size_of(url) for url in urls))


@workflow.defn
class FetchWorkflow:
    @workflow.run
    async def run(self, urls: list[str]) -> list[int]:
        return await workflow.execute_activity(
            fetch_sizes,
            urls,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=10),
            # A bug is not transient: in the workshop it fails the workflow at once,
            # instead of being retried for ever (the default).
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


WORKFLOWS = [FetchWorkflow]
ACTIVITIES = [fetch_sizes]

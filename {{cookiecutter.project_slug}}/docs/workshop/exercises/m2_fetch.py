"""Module 2: fetch many URLs in one activity, at most LIMIT at a time (see 02-fetch.md).

The activity below downloads one URL after another: while it waits for a response, the
event loop has nothing else to do. Make it keep up to LIMIT downloads in flight, and
return the sizes in the order of the URLs.
"""

from __future__ import annotations

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
    async with httpx.AsyncClient(timeout=10) as client:
        sizes = []
        for url in urls:
            response = await client.get(url)
            response.raise_for_status()
            sizes.append(len(response.content))
            activity.heartbeat()
        return sizes


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

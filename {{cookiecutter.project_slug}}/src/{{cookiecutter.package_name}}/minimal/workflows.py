"""`StatsWorkflow`: download pages, then compute their statistics.

Workflow code must be deterministic: it only orchestrates (activities do the I/O and the
computing) and Temporal replays it from its history after a worker dies. Timeouts: each
activity heartbeats, so a dead worker is noticed after `heartbeat_timeout` and the
activity retried on another worker, from its checkpoint.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from .activities import DownloadActivities, StatsActivities
    from .models import ComputeRequest, Page, PageResult, PageStats, StatsRequest, StatsResult

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=10)


@workflow.defn
class StatsWorkflow:
    """Download every URL, then word statistics of every page that downloaded."""

    def __init__(self) -> None:
        self._stage = "download"

    @workflow.run
    async def run(self, request: StatsRequest) -> StatsResult:
        heartbeat = timedelta(seconds=request.heartbeat_timeout_seconds)
        download: dict[str, Any] = {
            "start_to_close_timeout": timedelta(minutes=30),
            "heartbeat_timeout": heartbeat,
            "retry_policy": RETRY,
        }
        pages = await workflow.execute_activity_method(
            DownloadActivities.download_pages, request.urls, **download
        )
        try:
            stats = await self._stats(pages, request, heartbeat)
        except ActivityError as failure:
            cause = failure.cause
            if not (isinstance(cause, ApplicationError) and cause.type == "MissingBody"):
                raise
            # A body lost or altered in the store since the download (its SHA-256 is checked
            # on read): download again, once; a wrong body is never used.
            self._stage = "download"
            pages = await workflow.execute_activity_method(
                DownloadActivities.download_pages, request.urls, **download
            )
            stats = await self._stats(pages, request, heartbeat)
        self._stage = "done"
        return StatsResult(
            pages=[
                PageResult(
                    url=page.url,
                    stats=stats[page.sha256] if page.sha256 else None,
                    error=page.error,
                )
                for page in pages
            ]
        )

    async def _stats(
        self, pages: list[Page], request: StatsRequest, heartbeat: timedelta
    ) -> dict[str, PageStats]:
        self._stage = "stats"
        return await workflow.execute_activity_method(
            StatsActivities.compute_stats,
            ComputeRequest(
                sha256s=sorted({p.sha256 for p in pages if p.sha256}), rounds=request.rounds
            ),
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=heartbeat,
            retry_policy=RETRY,
        )

    @workflow.query
    def stage(self) -> str:
        """`download`, `stats` or `done`."""
        return self._stage

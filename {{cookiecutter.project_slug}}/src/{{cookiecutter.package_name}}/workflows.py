"""The sample pipeline workflow: orchestration only, no I/O.

Workflow code is replayed from its history whenever a worker needs to rebuild its
state, so it must be deterministic: no network, no clocks but `workflow.now()`, no
randomness but `workflow.random()`. All real work happens in activities. The SDK runs
this module in a sandbox; activity and model imports are passed through, since they
are only referenced here, never run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from .activities.duplicates import DuplicateActivities
    from .activities.fetch import FetchActivities
    from .activities.fingerprint import FingerprintActivities
    from .models import (
        DocumentRef,
        DuplicatesRequest,
        FailedUrl,
        FetchBatch,
        FingerprintRequest,
        PipelineInput,
        PipelineResult,
        PipelineStats,
        Progress,
    )

ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)


@workflow.defn(name="PipelineWorkflow")
class PipelineWorkflow:
    """Fetch every URL (stage 1, async I/O), fingerprint every body (stage 2, all cores),
    then group near-duplicates (stage 3)."""

    def __init__(self) -> None:
        self._progress = Progress(stage="starting", done=0, total=0)

    @workflow.query
    def progress(self) -> Progress:
        """Which stage is running and how many of its items are done."""
        return self._progress

    @workflow.run
    async def run(self, request: PipelineInput) -> PipelineResult:
        urls = list(dict.fromkeys(request.urls))  # drop repeats, keep order
        options = request.options
        started = workflow.now()

        timeouts: dict[str, Any] = {
            "start_to_close_timeout": timedelta(seconds=options.activity_start_to_close_seconds),
            "heartbeat_timeout": timedelta(seconds=options.heartbeat_timeout_seconds),
            "retry_policy": ACTIVITY_RETRY,
        }

        self._progress = Progress(stage="fetch", done=0, total=len(urls))
        documents: list[DocumentRef] = []
        failed: list[FailedUrl] = []
        for start in range(0, len(urls), options.fetch_batch_size):
            batch = FetchBatch(urls=urls[start : start + options.fetch_batch_size])
            fetched = await workflow.execute_activity_method(
                FetchActivities.fetch_documents, batch, **timeouts
            )
            documents += fetched.documents
            failed += fetched.failed
            self._progress = Progress(stage="fetch", done=start + len(batch.urls), total=len(urls))
        fetch_seconds = (workflow.now() - started).total_seconds()

        self._progress = Progress(stage="fingerprint", done=0, total=len(documents))
        fingerprints = await workflow.execute_activity_method(
            FingerprintActivities.fingerprint_documents,
            FingerprintRequest(documents=documents, minhash=options.minhash),
            # On cancellation, wait until the activity has really stopped its pool work.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            **timeouts,
        )

        self._progress = Progress(stage="duplicates", done=0, total=len(documents))
        duplicates = await workflow.execute_activity_method(
            DuplicateActivities.group_near_duplicates,
            DuplicatesRequest(
                signatures_key=fingerprints.signatures_key,
                documents=documents,
                threshold=options.similarity_threshold,
            ),
            **timeouts,
        )

        self._progress = Progress(stage="done", done=len(urls), total=len(urls))
        return PipelineResult(
            documents=documents,
            failed=failed,
            duplicates=duplicates,
            stats=PipelineStats(
                urls=len(urls),
                fetched=len(documents),
                failed=len(failed),
                bytes=sum(d.bytes for d in documents),
                words=sum(d.words for d in documents),
                fetch_seconds=round(fetch_seconds, 3),
                fingerprint=fingerprints.stats,
            ),
        )

"""The sample pipeline: a parent workflow that runs batches as child workflows.

Workflow code is replayed from its history whenever a worker needs to rebuild its
state, so it must be deterministic: no network, no clocks but `workflow.now()`, no
randomness but `workflow.random()`. All real work happens in activities. The SDK runs
this module in a sandbox; activity and model imports are passed through, since they
are only referenced here, never run.

Why batches as child workflows: a workflow's history grows with every activity it runs
(Temporal warns at 10,240 events and stops a workflow at 51,200 or 50 MB). Each batch is a
child workflow with a short history of its own, several run at once and any worker can take
each one, and the parent keeps only counts. The parent continues as new before its own
history gets long, so even 100,000 URLs never come near the limits.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from .activities.duplicates import DuplicateActivities
    from .activities.fetch import FetchActivities
    from .activities.fingerprint import MISSING_BODY, FingerprintActivities
    from .models import (
        BatchInput,
        BatchResult,
        Carried,
        DuplicatesRequest,
        FetchRequest,
        FetchSummary,
        FingerprintRequest,
        FingerprintStats,
        PipelineInput,
        PipelineOptions,
        PipelineProgress,
        PipelineResult,
        PipelineStats,
        Progress,
        Totals,
        batch_key,
    )

ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    # Bounded: an activity that keeps failing fails its batch (and `run` says why) instead
    # of retrying forever. A bad URL is never one of these: it is that URL's failure.
    maximum_attempts=10,
)


def batch_workflow_id(pipeline_id: str, index: int) -> str:
    """Workflow id of a pipeline's batch: readable in the UI, next to its parent's."""
    return f"{pipeline_id}-batch-{index:06d}"


def activity_options(options: PipelineOptions) -> dict[str, Any]:
    return {
        "start_to_close_timeout": timedelta(seconds=options.activity_start_to_close_seconds),
        "heartbeat_timeout": timedelta(seconds=options.heartbeat_timeout_seconds),
        "retry_policy": ACTIVITY_RETRY,
    }


@workflow.defn(name="BatchWorkflow")
class BatchWorkflow:
    """One batch: fetch its URLs (stage 1, async I/O), then fingerprint its documents
    (stage 2, all cores). Its lists go to the state store under its batch keys."""

    def __init__(self) -> None:
        self._progress = Progress(stage="starting", done=0, total=0)

    @workflow.query
    def progress(self) -> Progress:
        return self._progress

    @workflow.run
    async def run(self, batch: BatchInput) -> BatchResult:
        options = activity_options(batch.options)
        documents_key = batch_key(batch.data_key, batch.index, "documents")

        fetch = FetchRequest(urls=batch.urls, urls_key=batch.urls_key, documents_key=documents_key)
        fingerprint_request = FingerprintRequest(
            documents_key=documents_key,
            signatures_key=batch_key(batch.data_key, batch.index, "signatures"),
            minhash=batch.options.minhash,
        )
        fetched = await self._fetch(fetch, options)
        fingerprint = FingerprintStats()
        if fetched.fetched:
            try:
                fingerprint = await self._fingerprint(fingerprint_request, options)
            except ActivityError as failure:
                if not _missing_body(failure):
                    raise
                # A body gone from the store, or altered there, since the fetch (its SHA-256
                # is checked on read): fetch the batch again, which puts every body back, once.
                fetched = await self._fetch(fetch, options)
                if fetched.fetched:
                    fingerprint = await self._fingerprint(fingerprint_request, options)
        self._progress = Progress(stage="done", done=1, total=1)
        return BatchResult(
            index=batch.index,
            urls=fetched.fetched + fetched.failed,
            fetched=fetched.fetched,
            failed=fetched.failed,
            bytes=fetched.bytes,
            words=fetched.words,
            fingerprint=fingerprint,
        )

    async def _fetch(self, request: FetchRequest, options: dict[str, Any]) -> FetchSummary:
        self._progress = Progress(stage="fetch", done=0, total=1)
        return await workflow.execute_activity_method(
            FetchActivities.fetch_documents, request, **options
        )

    async def _fingerprint(
        self, request: FingerprintRequest, options: dict[str, Any]
    ) -> FingerprintStats:
        self._progress = Progress(stage="fingerprint", done=0, total=1)
        return await workflow.execute_activity_method(
            FingerprintActivities.fingerprint_documents,
            request,
            # On cancellation, wait until the activity has really stopped its pool work.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            **options,
        )


def _missing_body(failure: ActivityError) -> bool:
    cause = failure.cause
    return isinstance(cause, ApplicationError) and cause.type == MISSING_BODY


@workflow.defn(name="PipelineWorkflow")
class PipelineWorkflow:
    """Split the URLs into batches and run them as child workflows, `parallel_batches` at a
    time; then group near-duplicates across all batches (stage 3)."""

    def __init__(self) -> None:
        self._progress = PipelineProgress(stage="starting", done=0, total=0)

    @workflow.query
    def progress(self) -> PipelineProgress:
        """Which stage is running, the counts of the finished batches, and which batches are
        running (`run` reads their activities' heartbeats for the progress within a batch)."""
        return self._progress

    @workflow.run
    async def run(self, request: PipelineInput) -> PipelineResult:
        info = workflow.info()
        options = request.options
        # The same key in every run of a chain of continue-as-new: the lists of all batches
        # stay together, and a later pipeline with the same workflow id gets keys of its own.
        data_key = f"pipeline:{info.workflow_id}:{info.first_execution_run_id}"
        urls = list(dict.fromkeys(request.urls))  # drop repeats, keep order
        if request.staged is not None:
            batches, total = request.staged.chunks, request.staged.count
        else:
            batches, total = -(-len(urls) // options.batch_size), len(urls)
        carried = request.carried or Carried(
            next_batch=0, totals=Totals(), started_at=workflow.now().timestamp()
        )
        totals = carried.totals

        def batch_input(index: int) -> BatchInput:
            """Batch `index`: its chunk of the staged URLs by key, or its slice of `urls`."""
            staged, start = request.staged, index * options.batch_size
            return BatchInput(
                data_key=data_key,
                index=index,
                urls=[] if staged is not None else urls[start : start + options.batch_size],
                urls_key=staged.key(index) if staged is not None else None,
                options=options,
            )

        # The batch index of each running child, for the query only: keeping it makes no
        # command, so histories recorded without it replay the same.
        indexes: dict[asyncio.Task[BatchResult], int] = {}

        def show_batches() -> None:
            self._progress = PipelineProgress(
                stage="batches",
                done=totals.urls,
                total=total,
                fetched=totals.fetched,
                failed=totals.failed,
                batch_size=options.batch_size,
                running=sorted(indexes.values()),
            )

        show_batches()
        next_batch = carried.next_batch
        running: list[asyncio.Task[BatchResult]] = []
        while next_batch < batches or running:
            while (
                next_batch < batches
                and len(running) < options.parallel_batches
                and not self._history_is_long(options)
            ):
                task = asyncio.create_task(
                    workflow.execute_child_workflow(
                        BatchWorkflow.run,
                        batch_input(next_batch),
                        id=batch_workflow_id(info.workflow_id, next_batch),
                    )
                )
                running.append(task)
                indexes[task] = next_batch
                next_batch += 1
            show_batches()
            if not running:  # history is long and every started batch is done
                workflow.continue_as_new(
                    PipelineInput(
                        urls=request.urls,
                        staged=request.staged,
                        options=options,
                        carried=Carried(
                            next_batch=next_batch, totals=totals, started_at=carried.started_at
                        ),
                    )
                )
            try:
                done, running = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                # Cancel the running batches too, and wait until they (and their activities)
                # have stopped: otherwise they would only be terminated when this run ends.
                for task in running:
                    task.cancel()
                await workflow.wait(running)
                raise
            for task in done:
                totals.add(task.result())
                del indexes[task]
            show_batches()

        self._progress = PipelineProgress(
            stage="duplicates",
            done=0,
            total=totals.fetched,
            fetched=totals.fetched,
            failed=totals.failed,
        )
        duplicates = await workflow.execute_activity_method(
            DuplicateActivities.group_near_duplicates,
            DuplicatesRequest(
                data_key=data_key,
                batches=batches,
                num_perm=options.minhash.num_perm,
                threshold=options.similarity_threshold,
            ),
            **activity_options(options),
        )

        self._progress = PipelineProgress(
            stage="done", done=total, total=total, fetched=totals.fetched, failed=totals.failed
        )
        return PipelineResult(
            data_key=data_key,
            stats=PipelineStats(
                urls=totals.urls,
                fetched=totals.fetched,
                failed=totals.failed,
                bytes=totals.bytes,
                words=totals.words,
                batches=totals.batches,
                seconds=round(workflow.now().timestamp() - carried.started_at, 3),
                fingerprint=totals.fingerprint,
            ),
            duplicate_groups=duplicates.groups,
        )

    @staticmethod
    def _history_is_long(options: PipelineOptions) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= options.continue_as_new_after_events
        )

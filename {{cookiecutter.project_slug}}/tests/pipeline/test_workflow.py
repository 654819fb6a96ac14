"""The pipeline end to end, on the real dev server with an in-process worker: batches as
child workflows, results read back from the state store, continue-as-new."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory

from {{ cookiecutter.package_name }} import (
    SERVICE_NAME,
)
from {{ cookiecutter.package_name }}.app import (
    Settings,
    register,
)
from {{ cookiecutter.package_name }}.pipeline.models import (
    FailedUrl,
    PipelineInput,
    PipelineOptions,
    PipelineProgress,
    PipelineResult,
)
from {{ cookiecutter.package_name }}.pipeline.report import (
    PipelineReport,
    read_report,
)
from {{ cookiecutter.package_name }}.pipeline.workflows import (
    PipelineWorkflow,
    batch_workflow_id,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
)
from {{ cookiecutter.package_name }}.runtime.worker import (
    build_worker,
)

from ..conftest import expiries, make_settings
from ..toolkit.http_site import LocalSite

RESULT_TIMEOUT_SECONDS = 120


def event_types(history: WorkflowHistory, kind: EventType.ValueType) -> list[int]:
    return [e.event_id for e in history.events if e.event_type == kind]


def children(history: WorkflowHistory) -> list[str]:
    """Workflow ids of the child workflows a history started."""
    return [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]


def activities(history: WorkflowHistory) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def run_pipeline(
    client: Client,
    settings: Settings,
    pool: CpuPool,
    request: PipelineInput,
    wrap_store: Callable[[StateStore], StateStore] | None = None,
) -> tuple[WorkflowHandle[PipelineWorkflow, PipelineResult], PipelineResult, PipelineReport]:
    """Run one pipeline on a worker of its own; its result and the report read back."""
    async with settings.open_store() as store:
        # redis-py imports some modules on its first command: done here, not while a workflow
        # task runs in the sandbox (which warns about imports it sees then).
        await store.get("warm-up")
        worker_store = store if wrap_store is None else wrap_store(store)
        async with build_worker(client, settings, register(settings, worker_store, pool)):
            return await _run(client, settings, request, store)


async def _run(
    client: Client, settings: Settings, request: PipelineInput, store: StateStore
) -> tuple[WorkflowHandle[PipelineWorkflow, PipelineResult], PipelineResult, PipelineReport]:
    """Start the pipeline, wait for its result, read the report back from `store`."""
    handle = await client.start_workflow(
        PipelineWorkflow.run, request, id=f"wf-{uuid.uuid4()}", task_queue=settings.task_queue
    )
    async with asyncio.timeout(RESULT_TIMEOUT_SECONDS):  # a stuck workflow fails the test
        result = await handle.result()
    stats = result.stats
    assert await handle.query(PipelineWorkflow.progress) == PipelineProgress(
        stage="done",
        done=stats.urls,
        total=stats.urls,
        fetched=stats.fetched,
        failed=stats.failed,
    )
    return handle, result, await read_report(store, result, handle.id)


async def test_pipeline_runs_batches_as_child_workflows_and_reports_failures(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str, pool: CpuPool
) -> None:
    one, two, three = (site.url(f"doc/wf-{name}") for name in ("one", "two", "three"))
    missing = site.url("status/404")
    copy = site.url("copy/wf-one/again")  # same body as `one`
    request = PipelineInput(
        urls=[one, two, missing, one, three, copy],  # `one` twice: fetched once
        options=PipelineOptions(batch_size=2),
    )
    settings = make_settings(tmp_path, task_queue=task_queue)
    handle, result, report = await run_pipeline(client, settings, pool, request)

    assert [d.url for d in report.documents] == [one, two, three, copy]
    assert report.duplicates == [sorted([one, copy])]
    assert report.failed == [FailedUrl(url=missing, reason="HTTP 404 Not Found")]
    stats = result.stats
    assert (stats.urls, stats.fetched, stats.failed, stats.words, stats.batches) == (5, 4, 1, 28, 3)
    assert stats.bytes == sum(d.bytes for d in report.documents)
    assert result.duplicate_groups == 1
    # One signature per batch's distinct body: `one` (batch 0) and its copy (batch 2) run at
    # the same time, so the copy's is computed or, when batch 0 was first, memoized.
    fingerprint = stats.fingerprint
    assert (fingerprint.computed + fingerprint.memoized, fingerprint.restored) == (4, 0)

    # 5 URLs in batches of 2: three child workflows, then stage 3 in the parent.
    parent = await handle.fetch_history()
    batches = children(parent)
    assert batches == [batch_workflow_id(handle.id, i) for i in range(3)]
    assert activities(parent) == ["group_near_duplicates"]
    for batch in batches:
        history = await client.get_workflow_handle(batch).fetch_history()
        assert activities(history) == ["fetch_documents", "fingerprint_documents"]


async def test_the_progress_query_names_the_running_batches(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str, pool: CpuPool
) -> None:
    # Batch 0 waits at a gate only the test opens; batches 1 and 2 finish meanwhile.
    gate = f"running{uuid.uuid4().hex}"
    urls = [site.url(f"gate/{gate}"), site.url("doc/running-1"), site.url("status/404")]
    request = PipelineInput(urls=urls, options=PipelineOptions(batch_size=1, parallel_batches=2))
    settings = make_settings(tmp_path, task_queue=task_queue)
    expected = PipelineProgress(
        stage="batches", done=2, total=3, fetched=1, failed=1, batch_size=1, running=[0]
    )
    async with (
        settings.open_store() as store,
        build_worker(client, settings, register(settings, store, pool)),
    ):
        handle = await client.start_workflow(
            PipelineWorkflow.run, request, id=f"wf-{uuid.uuid4()}", task_queue=task_queue
        )
        try:
            async with asyncio.timeout(RESULT_TIMEOUT_SECONDS):  # a broken test only
                while (progress := await handle.query(PipelineWorkflow.progress)) != expected:
                    assert progress.stage in ("starting", "batches"), progress
                    await asyncio.sleep(0.05)
        finally:
            site.open_gate(gate)
        async with asyncio.timeout(RESULT_TIMEOUT_SECONDS):
            result = await handle.result()
    assert (result.stats.urls, result.stats.fetched, result.stats.batches) == (3, 2, 3)


async def test_batches_give_the_same_result_as_one_batch_and_find_duplicates_across_them(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str, pool: CpuPool
) -> None:
    urls = [site.url(f"words/200/batching-{i}") for i in range(100)]
    urls[97] = site.url("near/200/batching-3")  # a near-duplicate of urls[3], 9 batches later
    urls[58] = site.url("words/200/batching-12?again")  # the same body as urls[12]
    settings = make_settings(tmp_path, task_queue=task_queue)

    def request(batch_size: int) -> PipelineInput:
        return PipelineInput(urls=urls, options=PipelineOptions(batch_size=batch_size))

    batched_handle, batched, batched_report = await run_pipeline(
        client, settings, pool, request(10)
    )
    _, single, single_report = await run_pipeline(client, settings, pool, request(100))

    assert len(children(await batched_handle.fetch_history())) == 10
    assert (batched.stats.batches, single.stats.batches) == (10, 1)
    assert batched_report.documents == single_report.documents
    assert batched_report.failed == single_report.failed == []
    assert batched_report.duplicates == single_report.duplicates
    assert sorted([urls[3], urls[97]]) in batched_report.duplicates
    assert sorted([urls[12], urls[58]]) in batched_report.duplicates
    same_counts = ("urls", "fetched", "failed", "bytes", "words")
    assert [getattr(batched.stats, f) for f in same_counts] == [
        getattr(single.stats, f) for f in same_counts
    ]


def lengths_seen(history: WorkflowHistory, kind: EventType.ValueType) -> list[int]:
    """For each event of `kind` (a command's event), the history length that the workflow
    task which made it saw: the id of that task's WorkflowTaskStarted event."""
    by_id = {e.event_id: e for e in history.events}
    seen = []
    for event in history.events:
        if event.event_type != kind:
            continue
        _, attributes = event.ListFields()[-1]  # the event's attributes
        completed = by_id[attributes.workflow_task_completed_event_id]
        seen.append(completed.workflow_task_completed_event_attributes.started_event_id)
    return seen


async def test_a_long_pipeline_continues_as_new_and_keeps_its_counts(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str, pool: CpuPool
) -> None:
    # How many events a run has when it reaches the limit depends on timing (whether events
    # of the two running batches share a workflow task), so the test checks the rule on each
    # history instead of counts: a batch is started only by a task that saw fewer than
    # `limit` events, and a run continues as new from a task that saw `limit` or more.
    # Continuing as new is certain: the task that starts a 13th batch has seen at least 54
    # events (12 finished batches of 3 events each, 6 earlier tasks of 3, and its own 2 +
    # the run's first event), so no run can start all 16.
    limit = 50  # the lowest the options allow
    urls = [site.url(f"doc/can-{i}") for i in range(16)]
    request = PipelineInput(
        urls=urls,
        options=PipelineOptions(
            batch_size=1, parallel_batches=2, continue_as_new_after_events=limit
        ),
    )
    settings = make_settings(tmp_path, task_queue=task_queue)
    handle, result, report = await run_pipeline(client, settings, pool, request)

    runs = []
    run_id: str | None = handle.first_execution_run_id
    while run_id:  # the chain of runs, first to last
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        runs.append(history)
        (last,) = history.events[-1:]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    assert len(runs) >= 2
    for number, history in enumerate(runs, 1):
        started = lengths_seen(
            history, EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
        )
        assert started, f"run {number} started no batch"
        assert max(started) < limit, f"run {number}: a batch started after {max(started)} events"
        # The batches a run started all finished in it, before it continued as new.
        finished = event_types(history, EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED)
        assert len(finished) == len(started), f"run {number}"
        if number < len(runs):
            (continued,) = lengths_seen(
                history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
            )
            assert continued >= limit, f"run {number} continued as new after {continued} events"
    assert sum(len(children(history)) for history in runs) == 16  # each batch once
    assert [d.url for d in report.documents] == urls
    assert (result.stats.urls, result.stats.fetched, result.stats.batches) == (16, 16, 16)
    assert result.stats.fingerprint.computed == 16


class AltersABodyOnce(StateStore):
    """`inner`, except that the first body the fingerprint activity reads has been altered in
    the store just before: a poisoned (or corrupted) value between the two stages."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.altered: list[str] = []

    async def get(self, key: str) -> bytes | None:
        in_fingerprint = activity.in_activity() and (
            activity.info().activity_type == "fingerprint_documents"
        )
        if key.startswith("body:") and in_fingerprint and not self.altered:
            self.altered.append(key)
            await self.inner.put(key, b"another document altogether")
        return await self.inner.get(key)

    async def put(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        await self.inner.put(key, value, ttl_seconds=ttl_seconds)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)


async def test_a_body_altered_in_the_store_is_fetched_again_never_used(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str, pool: CpuPool
) -> None:
    """Bodies are checked against their SHA-256 on read: the batch whose body was altered
    after its fetch fetches again (once) and fingerprints the real document."""
    one, copy = site.url("doc/alter-one"), site.url("copy/alter-one/again")
    two = site.url("doc/alter-two")
    settings = make_settings(tmp_path, task_queue=task_queue)
    stores: list[AltersABodyOnce] = []

    def wrap(store: StateStore) -> StateStore:
        stores.append(AltersABodyOnce(store))
        return stores[0]

    request = PipelineInput(urls=[one, two, copy])
    handle, result, report = await run_pipeline(client, settings, pool, request, wrap)

    assert len(stores[0].altered) == 1
    assert [d.url for d in report.documents] == [one, two, copy]
    assert report.duplicates == [sorted([one, copy])]  # the real bodies' signatures
    assert (result.stats.fetched, result.stats.failed) == (3, 0)
    history = await client.get_workflow_handle(batch_workflow_id(handle.id, 0)).fetch_history()
    assert activities(history) == ["fetch_documents", "fingerprint_documents"] * 2


async def test_every_key_has_the_service_prefix_and_a_ttl(
    client: Client,
    site: LocalSite,
    store_url: str,
    tmp_path: Path,
    task_queue: str,
    pool: CpuPool,
) -> None:
    """After a run, on each backend: nothing in the store lacks the service's key prefix
    (another service on the same Redis is never overwritten) or an expiry (the store never
    only grows): bodies, memo entries, staged lists, a run's results."""
    settings = make_settings(tmp_path, task_queue=task_queue, state_store_url=store_url)
    urls = [site.url("doc/ttl-one"), site.url("doc/ttl-two"), site.url("status/404")]
    await run_pipeline(client, settings, pool, PipelineInput(urls=urls))
    found = expiries(store_url)
    kinds = {key.split(":")[1] for key in found}
    assert {"body", "memo", "pipeline"} <= kinds, sorted(found)
    assert [key for key in found if not key.startswith(f"{SERVICE_NAME}:")] == []
    assert [key for key, ttl in found.items() if ttl is None] == []


async def test_an_empty_url_list_completes_with_nothing(
    client: Client, tmp_path: Path, task_queue: str, pool: CpuPool
) -> None:
    settings = make_settings(tmp_path, task_queue=task_queue)
    _, result, report = await run_pipeline(client, settings, pool, PipelineInput(urls=[]))
    assert (report.documents, report.failed, report.duplicates) == ([], [], [])
    assert (result.stats.urls, result.stats.batches) == (0, 0)

"""The CPU stage under real failures: kill -9 of a worker, SIGTERM, cancellation, Redis down.

Workers run as separate processes, each in its own process group (as in a pod), against
the session's dev server. The corpus is big enough for the CPU stage to take seconds. The
kill -9 test runs once per state store backend (SQLite, Redis).
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from {{ cookiecutter.package_name }}.app import (
    register,
)
from {{ cookiecutter.package_name }}.pipeline.models import (
    PipelineInput,
    PipelineOptions,
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
from {{ cookiecutter.package_name }}.runtime.metrics import (
    PREFIX,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    open_store,
)
from {{ cookiecutter.package_name }}.runtime.worker import (
    build_worker,
)

from ..conftest import (
    address_of,
    count_keys,
    free_port,
    make_settings,
    running_worker,
    service_env,
    worker_log,
)
from ..runtime.test_metrics import scrape, totals
from ..toolkit.gate import Gate, GatedStore
from ..toolkit.http_site import LocalSite
from ..toolkit.redis_server import RedisServer

ACTIVITY_ENDINGS = (
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
)
CHECKPOINT_EVERY = 4
CHUNK = 2
PROCESSES = 2


def corpus(site: LocalSite, tag: str, count: int = 30) -> list[str]:
    """`count` distinct 3,000-word documents, plus one identical copy and one near-copy."""
    urls = [site.url(f"words/3000/{tag}-{i}") for i in range(count)]
    return [*urls, site.url(f"words/3000/{tag}-0?copy"), site.url(f"near/3000/{tag}-1")]


def worker_env(client: Client, task_queue: str, store_url: str, **extra: object) -> dict[str, str]:
    return service_env(
        address_of(client),
        task_queue=task_queue,
        state_store_url=store_url,
        cpu_processes=PROCESSES,
        cpu_chunk_size=CHUNK,
        checkpoint_every_items=CHECKPOINT_EVERY,
        checkpoint_every_seconds=60,
        sticky_queue_timeout_seconds=1,
        **extra,
    )


async def start_pipeline(
    client: Client, task_queue: str, urls: list[str]
) -> WorkflowHandle[Any, PipelineResult]:
    return await client.start_workflow(
        PipelineWorkflow.run,
        PipelineInput(urls=urls, options=PipelineOptions(heartbeat_timeout_seconds=2)),
        id=f"resume-{uuid.uuid4()}",
        task_queue=task_queue,
    )


def only_batch(handle: WorkflowHandle[Any, Any]) -> WorkflowHandle[Any, Any]:
    """The pipeline's only batch: these corpora are smaller than the default batch size."""
    return handle._client.get_workflow_handle(batch_workflow_id(handle.id, 0))


async def report_of(handle: WorkflowHandle[Any, PipelineResult], store_url: str) -> PipelineReport:
    """Wait for the pipeline's result (a guard of 5 minutes); read its lists from the store."""
    result = await asyncio.wait_for(handle.result(), 300)
    async with open_store(store_url) as store:
        return await read_report(store, result, handle.id)


def memoized_signatures(store_url: str) -> int:
    """Signatures finished so far: each is memoized the moment its chunk comes back."""
    return count_keys(store_url, "memo:minhash:")


def sqlite_url(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


@pytest.fixture(scope="module")
async def clean_kill_result(
    temporal_env: WorkflowEnvironment,
    site: LocalSite,
    pool: CpuPool,
    tmp_path_factory: pytest.TempPathFactory,
) -> PipelineReport:
    """The kill tests' corpus run once, uninterrupted, on a fresh store: what they must return."""
    client = temporal_env.client
    settings = make_settings(tmp_path_factory.mktemp("clean"), task_queue=f"clean-{uuid.uuid4()}")
    async with (
        open_store(settings.state_store_url) as store,
        build_worker(client, settings, register(settings, store, pool)),
    ):
        handle = await start_pipeline(client, settings.task_queue, corpus(site, "kill", count=36))
        return await report_of(handle, settings.state_store_url)


def stop_group(process: asyncio.subprocess.Process, sig: int) -> None:
    os.killpg(process.pid, sig)


async def test_kill_9_mid_cpu_stage_resumes_from_the_checkpoint(
    client: Client,
    site: LocalSite,
    store_url: str,
    task_queue: str,
    tmp_path: Path,
    clean_kill_result: PipelineReport,
) -> None:
    urls = corpus(site, "kill", count=36)
    env = worker_env(client, task_queue, store_url)
    gate = Gate(tmp_path / "gate")
    async with running_worker(env, gate=gate) as first:
        handle = await start_pipeline(client, task_queue, urls)
        # A checkpoint is saved and the stage is held mid-way: it cannot be over when we kill.
        await gate.wait_held(process=first)
        stop_group(first, signal.SIGKILL)
        await first.wait()
    finished_before_kill = memoized_signatures(store_url)

    metrics_port = free_port()
    env = worker_env(client, task_queue, store_url, metrics_port=metrics_port)
    async with running_worker(env) as second:
        result = await report_of(handle, store_url)
        metrics = totals(await asyncio.to_thread(scrape, metrics_port))

    expected = clean_kill_result  # the same corpus, uninterrupted, on a fresh store
    assert result.documents == expected.documents
    assert result.duplicates == expected.duplicates
    assert result.duplicates == sorted([sorted([urls[0], urls[-2]]), sorted([urls[1], urls[-1]])])
    fp = result.stats.fingerprint
    assert fp.attempt >= 2, worker_log(second)
    assert fp.restored >= CHECKPOINT_EVERY
    # Nothing finished before the kill was computed again: what the checkpoint did not
    # hold, the memo did. The checkpoint alone lagged by at most one interval plus the
    # chunks in flight.
    distinct = len({d.sha256 for d in result.documents})
    assert fp.restored + fp.memoized == finished_before_kill
    assert fp.computed == distinct - finished_before_kill
    assert finished_before_kill - fp.restored <= CHECKPOINT_EVERY + 2 * PROCESSES * CHUNK
    # The second worker's metrics say the same.
    assert metrics[f"{PREFIX}checkpoint_restores"] == 1
    assert metrics[f"{PREFIX}signatures_restored"] == fp.restored
    assert metrics[f"{PREFIX}signatures_memoized"] == fp.memoized
    assert metrics[f"{PREFIX}signatures_computed"] == fp.computed


async def test_sigterm_mid_cpu_stage_drains_without_a_failed_activity(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    urls = corpus(site, "drain", count=16)
    env = worker_env(client, task_queue, sqlite_url(tmp_path, "s.db"), graceful_shutdown_seconds=30)
    gate = Gate(tmp_path / "gate")
    async with running_worker(env, gate=gate) as worker:
        handle = await start_pipeline(client, task_queue, urls)
        try:
            await gate.wait_held(process=worker)  # mid-stage, and held there
            stop_group(worker, signal.SIGINT)  # Ctrl-C in a terminal: the whole group gets it
            await poll(lambda: "draining" in worker_log(worker), "the worker to start draining")
            gate.open()  # the rest of the stage now runs during the drain
            assert await asyncio.wait_for(worker.wait(), 60) == 0, worker_log(worker)

            events = [e async for e in only_batch(handle).fetch_history_events()]
        finally:
            await handle.terminate("test over")
    kinds = [e.event_type for e in events]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED not in kinds
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT not in kinds
    # Fetch, then the fingerprint activity, which finished during the drain.
    assert kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) == 2


async def test_cancelling_the_workflow_stops_the_cpu_work(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    """The stage is held mid-way, so it can only end by the cancellation reaching it."""
    urls = corpus(site, "cancel", count=16)
    gate = Gate(tmp_path / "gate")
    env = worker_env(client, task_queue, sqlite_url(tmp_path, "s.db"))
    async with running_worker(env, gate=gate) as worker:
        handle = await start_pipeline(client, task_queue, urls)
        await gate.wait_held(process=worker)
        await handle.cancel()
        # The cancellation goes from the pipeline to its batch, and on to the batch's activity.
        batch = only_batch(handle)

        async def cpu_activity_outcome() -> EventType.ValueType | None:
            """How the fingerprint activity ended, once it has (the fetch ends before it starts)."""
            scheduled = False
            async for event in batch.fetch_history_events():
                attributes = event.activity_task_scheduled_event_attributes
                if attributes.activity_type.name == "fingerprint_documents":
                    scheduled = True
                elif scheduled and event.event_type in ACTIVITY_ENDINGS:
                    return event.event_type
            return None

        outcome = await poll(cpu_activity_outcome, "the CPU activity to end", timeout=60)
        assert outcome == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED, worker_log(worker)
        assert not gate.open_file.exists()  # nothing but the cancellation let it go


async def poll(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """The first truthy value of `condition()` (a coroutine function or not), polled."""
    for _ in range(int(timeout / 0.05)):
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def failed_attempt_message(handle: WorkflowHandle[Any, Any], activity_type: str) -> str:
    """Once an attempt of the batch's activity has failed (it is retrying), its message."""
    description = await only_batch(handle).describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name == activity_type and pending.attempt >= 2:
            return pending.last_failure.message
    return ""


async def test_redis_down_mid_cpu_stage_fails_the_attempt_and_the_retry_finishes(
    client: Client,
    site: LocalSite,
    tmp_path: Path,
    task_queue: str,
    pool: CpuPool,
    clean_kill_result: PipelineReport,
) -> None:
    """Redis dies (kill -9) during stage 2 and stays down until an attempt has failed; then it
    starts again on the same port, reloading its append-only file, as a restarted Redis with
    persistence does. The retry resumes from the checkpoint and the result is the clean one."""
    server = RedisServer(tmp_path / "redis", durable=True)
    settings = make_settings(
        tmp_path,
        task_queue=task_queue,
        state_store_url=server.url(),
        cpu_chunk_size=CHUNK,
        checkpoint_every_items=CHECKPOINT_EVERY,
        checkpoint_every_seconds=60,
    )
    try:
        server.start()
        gate = Gate(tmp_path / "gate")
        async with (
            open_store(settings.state_store_url) as store,
            build_worker(client, settings, register(settings, GatedStore(store, gate), pool)),
        ):
            handle = await start_pipeline(client, task_queue, corpus(site, "kill", count=36))
            await gate.wait_held()  # a checkpoint is saved; the stage is held mid-way
            server.kill()
            gate.open()  # the held calls now meet a dead Redis
            failure = await poll(
                lambda: failed_attempt_message(handle, "fingerprint_documents"), "a failed attempt"
            )
            server.start()
            result = await report_of(handle, server.url())
    finally:
        server.stop()

    assert failure.startswith(f"Redis state store {server.url()}: ")  # nothing else failed
    assert result.documents == clean_kill_result.documents
    assert result.duplicates == clean_kill_result.duplicates
    fp = result.stats.fingerprint
    assert fp.attempt >= 2
    assert fp.restored >= CHECKPOINT_EVERY  # the checkpoint outlived the crash

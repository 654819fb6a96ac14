"""The CPU stage under real failures: kill -9 of a worker, SIGTERM, cancellation, Redis down.

Workers run as separate processes, each in its own process group (as in a pod), against
the session's dev server (tests/toolkit/worker.py). Each case holds the fingerprint
activity at a gate after its first checkpoint (tests/toolkit/gate.py), so "mid-stage" is a
certain moment. The kill -9 test runs once per state store backend (SQLite, Redis).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from {{ cookiecutter.package_name }} import (
    SERVICE_NAME,
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

from ..conftest import count_keys, make_settings
from ..toolkit.gate import Gate
from ..toolkit.http_site import LocalSite
from ..toolkit.observe import (
    activity_outcomes,
    failed_attempt_message,
    finished_attempts,
    poll,
)
from ..toolkit.processes import address_of, service_env
from ..toolkit.redis_server import RedisServer
from ..toolkit.worker import in_process_worker, running_worker

CPU_ACTIVITY = "fingerprint_documents"
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


def cpu_gate(tmp_path: Path) -> Gate:
    """Closes once the fingerprint activity has saved its first checkpoint."""
    return Gate(tmp_path / "gate", activity=CPU_ACTIVITY)


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
    """The pipeline's only batch (these corpora are smaller than the default batch size):
    the child workflow that runs the CPU activity."""
    return handle._client.get_workflow_handle(batch_workflow_id(handle.id, 0))


async def report_of(handle: WorkflowHandle[Any, PipelineResult], store_url: str) -> PipelineReport:
    """Wait for the pipeline's result (a guard of 5 minutes); read its lists from the store."""
    result = await asyncio.wait_for(handle.result(), 300)
    async with open_store(store_url, key_prefix=SERVICE_NAME) as store:
        return await read_report(store, result, handle.id)


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
    async with in_process_worker(client, settings, pool=pool):
        handle = await start_pipeline(client, settings.task_queue, corpus(site, "kill", count=36))
        return await report_of(handle, settings.state_store_url)


@pytest.mark.slow(seconds=8)  # two workers and a heartbeat timeout, per store
async def test_kill_9_mid_cpu_stage_resumes_from_the_checkpoint(
    client: Client,
    site: LocalSite,
    store_url: str,
    task_queue: str,
    tmp_path: Path,
    clean_kill_result: PipelineReport,
) -> None:
    urls = corpus(site, "kill", count=36)
    gate = cpu_gate(tmp_path)
    async with running_worker(worker_env(client, task_queue, store_url), gate=gate) as first:
        handle = await start_pipeline(client, task_queue, urls)
        await gate.wait_held(first)  # a checkpoint saved, the stage held: it cannot be over
        await first.kill()
    finished_before_kill = count_keys(store_url, "memo:minhash:")  # memoized as each chunk ends

    env = worker_env(client, task_queue, store_url)
    async with running_worker(env, serve_metrics=True) as second:
        result = await report_of(handle, store_url)
        metrics = await second.metrics()

    expected = clean_kill_result  # the same corpus, uninterrupted, on a fresh store
    assert result.documents == expected.documents
    assert result.duplicates == expected.duplicates
    assert result.duplicates == sorted([sorted([urls[0], urls[-2]]), sorted([urls[1], urls[-1]])])
    fp = result.stats.fingerprint
    assert fp.attempt >= 2, second.log
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
    env = worker_env(
        client, task_queue, f"sqlite:///{tmp_path / 's.db'}", graceful_shutdown_seconds=30
    )
    async with running_worker(env, gate=cpu_gate(tmp_path)) as worker:
        handle = await start_pipeline(client, task_queue, corpus(site, "drain", count=16))
        try:
            assert worker.gate is not None
            await worker.gate.wait_held(worker)  # mid-stage, and held there
            # Ctrl-C in a terminal (the whole group gets it); the held rest of the stage
            # then runs during the drain.
            assert await worker.drain(sig=signal.SIGINT) == 0, worker.log
            outcomes = await activity_outcomes(only_batch(handle))
            attempts = await finished_attempts(only_batch(handle), CPU_ACTIVITY)
        finally:
            await handle.terminate("test over")
    # The fetch, then the CPU activity, which finished during the drain: nothing failed.
    assert outcomes == [EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED] * 2
    assert attempts == [1]


async def test_cancelling_the_workflow_stops_the_cpu_work(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    """The stage is held mid-way, so it can only end by the cancellation reaching it."""
    gate = cpu_gate(tmp_path)
    env = worker_env(client, task_queue, f"sqlite:///{tmp_path / 's.db'}")
    async with running_worker(env, gate=gate) as worker:
        handle = await start_pipeline(client, task_queue, corpus(site, "cancel", count=16))
        await gate.wait_held(worker)
        await handle.cancel()  # from the pipeline to its batch, on to the batch's activity
        outcomes = await poll(
            lambda: activity_outcomes(only_batch(handle), CPU_ACTIVITY), "the CPU activity to end"
        )
        assert outcomes == [EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED], worker.log
        assert not gate.open_file.exists()  # nothing but the cancellation let it go


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
    gate = cpu_gate(tmp_path)
    try:
        server.start()
        async with in_process_worker(client, settings, pool=pool, gate=gate):
            handle = await start_pipeline(client, task_queue, corpus(site, "kill", count=36))
            await gate.wait_held()  # a checkpoint is saved; the stage is held mid-way
            server.kill()
            gate.open()  # the held calls now meet a dead Redis
            failure = await poll(
                lambda: failed_attempt_message(only_batch(handle), CPU_ACTIVITY),
                "a failed attempt",
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

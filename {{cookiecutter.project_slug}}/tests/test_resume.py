"""The CPU stage under real failures: kill -9 of a worker, SIGTERM, cancellation.

Workers run as separate processes, each in its own process group (as in a pod), against
the session's dev server. The corpus is big enough for the CPU stage to take seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import uuid
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from {{ cookiecutter.package_name }}.metrics import (
    PREFIX,
)
from {{ cookiecutter.package_name }}.models import (
    PipelineInput,
    PipelineOptions,
    PipelineResult,
)
from {{ cookiecutter.package_name }}.workflows import (
    PipelineWorkflow,
)

from .conftest import address_of, free_port, service_env
from .http_site import LocalSite
from .test_metrics import scrape, totals

PACKAGE = "{{ cookiecutter.package_name }}"
CHECKPOINT_EVERY = 4
CHUNK = 2
PROCESSES = 2


def corpus(site: LocalSite, tag: str, count: int = 30) -> list[str]:
    """`count` distinct 3,000-word documents, plus one identical copy and one near-copy."""
    urls = [site.url(f"words/3000/{tag}-{i}") for i in range(count)]
    return [*urls, site.url(f"words/3000/{tag}-0?copy"), site.url(f"near/3000/{tag}-1")]


async def start_worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    """A worker in its own process group (its pool children join that group)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        PACKAGE,
        "worker",
        env=env,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stderr is not None
    while b"worker started" not in (line := await asyncio.wait_for(process.stderr.readline(), 30)):
        assert line, "worker exited before it started"
    return process


def worker_env(client: Client, task_queue: str, store: Path, **extra: object) -> dict[str, str]:
    return service_env(
        address_of(client),
        task_queue=task_queue,
        state_store_url=f"sqlite:///{store}",
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


async def fingerprint_progress(handle: WorkflowHandle[Any, Any]) -> int:
    """Signatures done so far, from the heartbeat details of the running CPU activity."""
    description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        if (
            pending.activity_type.name == "fingerprint_documents"
            and pending.heartbeat_details.payloads
        ):
            details = await handle._client.data_converter.decode(pending.heartbeat_details.payloads)
            return int(details[0]["done"])
    return 0


async def wait_for_progress(handle: WorkflowHandle[Any, Any], at_least: int) -> int:
    for _ in range(600):
        done = await fingerprint_progress(handle)
        if done >= at_least:
            return done
        await asyncio.sleep(0.05)
    raise AssertionError(f"the CPU stage never reached {at_least} signatures")


def memoized_signatures(store: Path) -> int:
    """Signatures finished so far: each is memoized the moment its chunk comes back."""
    with contextlib.closing(sqlite3.connect(store)) as db:
        query = "SELECT COUNT(*) FROM kv WHERE key LIKE 'memo:minhash:%'"
        return int(db.execute(query).fetchone()[0])


def stop_group(process: asyncio.subprocess.Process, sig: int) -> None:
    os.killpg(process.pid, sig)


async def test_kill_9_mid_cpu_stage_resumes_from_the_checkpoint(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    urls = corpus(site, "kill", count=36)
    env = worker_env(client, task_queue, tmp_path / "state.db")
    first = await start_worker(env)
    handle = await start_pipeline(client, task_queue, urls)
    await wait_for_progress(handle, CHECKPOINT_EVERY)  # a checkpoint has been saved
    stop_group(first, signal.SIGKILL)
    await first.wait()
    finished_before_kill = memoized_signatures(tmp_path / "state.db")

    metrics_port = free_port()
    second = await start_worker(
        worker_env(client, task_queue, tmp_path / "state.db", metrics_port=metrics_port)
    )
    try:
        result = await asyncio.wait_for(handle.result(), 60)
        metrics = totals(await asyncio.to_thread(scrape, metrics_port))
    finally:
        stop_group(second, signal.SIGTERM)
        await second.wait()

    # The same corpus, uninterrupted, on a fresh store (no memo, no checkpoint).
    clean_queue = f"{task_queue}-clean"
    clean = await start_worker(worker_env(client, clean_queue, tmp_path / "clean.db"))
    try:
        expected = await (await start_pipeline(client, clean_queue, urls)).result()
    finally:
        stop_group(clean, signal.SIGTERM)
        await clean.wait()

    assert result.documents == expected.documents
    assert result.duplicates == expected.duplicates
    assert result.duplicates == sorted([sorted([urls[0], urls[-2]]), sorted([urls[1], urls[-1]])])
    fp = result.stats.fingerprint
    assert fp is not None
    assert fp.attempt >= 2
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
    worker = await start_worker(
        worker_env(client, task_queue, tmp_path / "s.db", graceful_shutdown_seconds=30)
    )
    handle = await start_pipeline(client, task_queue, urls)
    await wait_for_progress(handle, 2)
    stop_group(worker, signal.SIGINT)  # Ctrl-C in a terminal: the whole group gets it
    assert await asyncio.wait_for(worker.wait(), 60) == 0

    events = [e async for e in handle.fetch_history_events()]
    kinds = [e.event_type for e in events]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED not in kinds
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT not in kinds
    completed = kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    fetch_batches = -(-len(urls) // 20)
    assert completed == fetch_batches + 1  # the fingerprint activity finished during the drain
    await handle.terminate("test over")


async def test_cancelling_the_workflow_stops_the_cpu_work_promptly(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    urls = corpus(site, "cancel", count=60)  # cancelled long before the end
    worker = await start_worker(worker_env(client, task_queue, tmp_path / "s.db"))
    try:
        handle = await start_pipeline(client, task_queue, urls)
        await wait_for_progress(handle, 2)
        await handle.cancel()
        for _ in range(100):
            events = [e async for e in handle.fetch_history_events()]
            by_kind = {e.event_type: e for e in events}
            if EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED in by_kind:
                break
            await asyncio.sleep(0.1)
        requested = by_kind[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED]
        cancelled = by_kind[EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED]
        delay = cancelled.event_time.ToDatetime() - requested.event_time.ToDatetime()
        assert delay.total_seconds() < 2.0
    finally:
        stop_group(worker, signal.SIGTERM)
        await worker.wait()

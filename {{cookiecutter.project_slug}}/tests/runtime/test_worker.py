"""The worker as a real process: start-up, draining on SIGTERM, giving up, and side by side."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from {{ cookiecutter.package_name }}.pipeline.models import (
    PipelineInput,
    PipelineResult,
)
from {{ cookiecutter.package_name }}.pipeline.workflows import (
    PipelineWorkflow,
    batch_workflow_id,
)

from ..conftest import address_of, free_port, run_process, running_worker, service_env, worker_log
from ..toolkit.http_site import LocalSite
from .test_health import get

PACKAGE = "{{ cookiecutter.package_name }}"


async def wait_until(condition: object, timeout: float = 60.0) -> None:
    """Wait for `condition()`; the timeout only stops a broken test, no speed needs it."""

    async def poll() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def test_sigterm_drains_the_running_activity(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    health_port = free_port()
    health = f"http://127.0.0.1:{health_port}"
    env = service_env(
        address_of(client),
        task_queue=task_queue,
        state_store_url=f"sqlite:///{tmp_path / 's.db'}",
        graceful_shutdown_seconds=60,
        health_port=health_port,
    )
    gate = f"drained{uuid.uuid4().hex[:8]}"
    path = f"/gate/{gate}"
    async with running_worker(env) as worker:
        handle = await client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(urls=[site.url(path)]),
            id=f"drain-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        try:
            # The fetch is in flight, held by the site until the gate opens.
            await wait_until(lambda: site.hits[path] >= 1)
            assert await asyncio.to_thread(get, f"{health}/readyz") == (200, "ready\n")
            worker.send_signal(signal.SIGTERM)
            # Draining: no longer ready, still alive (a liveness failure now would kill the drain).
            await wait_until(lambda: "draining" in worker_log(worker))
            assert await asyncio.to_thread(get, f"{health}/readyz") == (503, "not ready\n")
            assert await asyncio.to_thread(get, f"{health}/healthz") == (200, "ok\n")
            site.open_gate(gate)  # the running activity finishes during the drain
            assert await asyncio.wait_for(worker.wait(), 60) == 0, worker_log(worker)
            assert "worker stopped" in worker_log(worker)

            # The activity finished on its first attempt, during the drain: nothing to retry.
            batch = client.get_workflow_handle(batch_workflow_id(handle.id, 0))
            history = await batch.fetch_history()
        finally:
            await handle.terminate("test over")
    kinds = [e.event_type for e in history.events]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED in kinds
    started = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert [e.activity_task_started_event_attributes.attempt for e in started] == [1]
    assert site.hits[path] == 1


async def test_unreachable_temporal_is_retried_then_given_up(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    env = service_env(
        address, connect_timeout_seconds=1.5, state_store_url=f"sqlite:///{tmp_path}/s.db"
    )
    code, text = await run_process(sys.executable, "-m", PACKAGE, "worker", env=env, timeout=60)
    assert code == 1, text
    assert f"Temporal at {address} not reachable (" in text  # a retry was logged
    assert f"Temporal at {address} not reachable after 1.5s" in text
    assert "Traceback" not in text


async def test_two_workers_share_one_task_queue(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    """Work that one worker cannot take goes to the other one on the same queue.

    The first worker holds a fetch (the site keeps it waiting) and is told to drain, so it
    polls no more; a second pipeline then can only run on the second worker. Both pipelines
    finish, and their activities name both workers.
    """
    env = service_env(
        address_of(client),
        task_queue=task_queue,
        state_store_url=f"sqlite:///{tmp_path / 's.db'}",
        graceful_shutdown_seconds=60,
        sticky_queue_timeout_seconds=1,
    )
    gate = f"shared{uuid.uuid4().hex[:8]}"

    async def start(url: str) -> WorkflowHandle[Any, PipelineResult]:
        return await client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(urls=[url]),
            id=f"shared-{uuid.uuid4()}",
            task_queue=task_queue,
        )

    async with running_worker(env) as first, running_worker(env) as second:
        held = await start(site.url(f"gate/{gate}"))
        await wait_until(lambda: site.hits[f"/gate/{gate}"] >= 1)
        holder = await worker_running_fetch(client, held, {first, second})
        other = second if holder is first else first
        holder.send_signal(signal.SIGTERM)
        await wait_until(lambda: "draining" in worker_log(holder))
        moved = await start(site.url(f"doc/shared-{uuid.uuid4().hex[:8]}"))
        assert (await asyncio.wait_for(moved.result(), 60)).stats.fetched == 1
        site.open_gate(gate)
        assert await asyncio.wait_for(holder.wait(), 60) == 0, worker_log(holder)
        assert (await asyncio.wait_for(held.result(), 60)).stats.fetched == 1
        other.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(other.wait(), 60) == 0, worker_log(other)

    identities = {
        event.activity_task_started_event_attributes.identity
        for handle in (held, moved)
        async for event in client.get_workflow_handle(
            batch_workflow_id(handle.id, 0)
        ).fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    }
    # The SDK's default identity is <pid>@<host>.
    assert {identity.split("@")[0] for identity in identities} == {str(first.pid), str(second.pid)}


async def worker_running_fetch(
    client: Client,
    handle: WorkflowHandle[Any, Any],
    workers: set[asyncio.subprocess.Process],
) -> asyncio.subprocess.Process:
    """The worker process whose identity the running fetch activity of `handle` names."""
    batch = client.get_workflow_handle(batch_workflow_id(handle.id, 0))

    async def identity() -> str:
        for pending in (await batch.describe()).raw_description.pending_activities:
            if pending.last_worker_identity:
                return pending.last_worker_identity
        return ""

    async def named() -> str:
        while not (name := await identity()):
            await asyncio.sleep(0.05)
        return name

    name = await asyncio.wait_for(named(), 60)
    (worker,) = [w for w in workers if name.startswith(f"{w.pid}@")]
    return worker

"""The worker as a real process: start-up, draining on SIGTERM, giving up, and side by side."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from {{ cookiecutter.package_name }}.models import (
    PipelineInput,
    PipelineOptions,
)
from {{ cookiecutter.package_name }}.workflows import (
    PipelineWorkflow,
    batch_workflow_id,
)

from .conftest import address_of, free_port, service_env, start_worker
from .http_site import LocalSite
from .test_health import get

PACKAGE = "{{ cookiecutter.package_name }}"


async def wait_until(condition: object, timeout: float = 10.0) -> None:
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
        graceful_shutdown_seconds=10,
        health_port=health_port,
    )
    worker = await start_worker(env)
    slow = "/slow/1500/drained"
    handle = await client.start_workflow(
        PipelineWorkflow.run,
        PipelineInput(urls=[site.url(slow)]),
        id=f"drain-{uuid.uuid4()}",
        task_queue=task_queue,
    )
    await wait_until(lambda: site.hits[slow] >= 1)
    assert await asyncio.to_thread(get, f"{health}/readyz") == (200, "ready\n")
    worker.send_signal(signal.SIGTERM)
    # Draining: no longer ready, still alive (a liveness failure now would kill the drain).
    while (readyz := await asyncio.to_thread(get, f"{health}/readyz"))[0] == 200:
        await asyncio.sleep(0.02)
    assert readyz == (503, "not ready\n")
    assert await asyncio.to_thread(get, f"{health}/healthz") == (200, "ok\n")
    assert worker.stderr is not None
    stderr = (await asyncio.wait_for(worker.stderr.read(), 30)).decode()
    assert await worker.wait() == 0
    assert "draining" in stderr
    assert "worker stopped" in stderr

    # The activity finished on its first attempt, during the drain: nothing to retry.
    history = await client.get_workflow_handle(batch_workflow_id(handle.id, 0)).fetch_history()
    kinds = [e.event_type for e in history.events]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED in kinds
    started = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert [e.activity_task_started_event_attributes.attempt for e in started] == [1]
    assert site.hits[slow] == 1
    await handle.terminate("test over")


async def test_unreachable_temporal_is_retried_then_given_up(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    env = service_env(
        address, connect_timeout_seconds=1.5, state_store_url=f"sqlite:///{tmp_path}/s.db"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", PACKAGE, "worker", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    text = stderr.decode()
    assert process.returncode == 1
    assert f"Temporal at {address} not reachable (" in text  # a retry was logged
    assert f"Temporal at {address} not reachable after 1.5s" in text
    assert "Traceback" not in text


async def test_two_workers_share_one_task_queue(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    env = service_env(
        address_of(client), task_queue=task_queue, state_store_url=f"sqlite:///{tmp_path / 's.db'}"
    )
    workers = await asyncio.gather(start_worker(env), start_worker(env))
    try:
        urls = [site.url(f"slow/300/shared-{i}") for i in range(8)]
        handles = [
            await client.start_workflow(
                PipelineWorkflow.run,
                PipelineInput(urls=urls[i : i + 2], options=PipelineOptions(batch_size=1)),
                id=f"shared-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            for i in range(0, 8, 2)
        ]
        results = [await h.result() for h in handles]
        assert sum(r.stats.fetched for r in results) == 8
        identities = set()
        batches = [batch_workflow_id(h.id, i) for h in handles for i in range(2)]
        for batch in batches:
            async for event in client.get_workflow_handle(batch).fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                    identities.add(event.activity_task_started_event_attributes.identity)
        assert len(identities) == 2  # both workers ran activities
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        assert [await w.wait() for w in workers] == [0, 0]

"""`run`'s waiting: it shows why a pending activity is being retried, and bounds the run."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from {{ cookiecutter.package_name }}.runtime.starter import (
    execution_timeout,
    report_failures,
)

from ..conftest import make_settings

GUARD_SECONDS = 60.0  # ends a broken test; no speed makes it pass or fail
release = asyncio.Event()  # set by the test: the activity then succeeds


@activity.defn
async def fails_until_released() -> str:
    if not release.is_set():
        raise RuntimeError(f"upstream not ready (attempt {activity.info().attempt})")
    return "done"


@workflow.defn(sandboxed=False)
class RetriesAnActivity:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            fails_until_released,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=0.2), backoff_coefficient=1
            ),
        )


async def test_the_last_failure_of_a_retried_activity_is_shown(
    client: Client, task_queue: str
) -> None:
    release.clear()
    out = io.StringIO()
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[RetriesAnActivity],
        activities=[fails_until_released],
    ):
        handle = await client.start_workflow(
            RetriesAnActivity.run, id=f"retries-{uuid.uuid4()}", task_queue=task_queue
        )
        watcher = asyncio.create_task(report_failures(handle, out, poll_seconds=0.1))
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + GUARD_SECONDS
            while "upstream not ready" not in out.getvalue():
                assert loop.time() < deadline, out.getvalue()
                await asyncio.sleep(0.05)
            release.set()
            assert await asyncio.wait_for(handle.result(), GUARD_SECONDS) == "done"
        finally:
            release.set()
            watcher.cancel()
    line = out.getvalue().splitlines()[0]
    assert line.startswith("  fails_until_released is on attempt "), line
    assert "the last one failed: upstream not ready (attempt " in line


def test_the_execution_timeout_is_the_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, workflow_execution_timeout_seconds=90)
    assert execution_timeout(settings) == timedelta(seconds=90)

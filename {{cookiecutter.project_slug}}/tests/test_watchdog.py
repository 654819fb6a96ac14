"""The event-loop watchdog catches a real activity blocking a real worker's event loop."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from {{ cookiecutter.package_name }}.watchdog import (
    LoopWatchdog,
)

BLOCK_SECONDS = 0.6
THRESHOLD_SECONDS = 0.2


@activity.defn
async def sleeps_on_the_loop() -> None:
    time.sleep(BLOCK_SECONDS)  # the mistake the watchdog exists for


@activity.defn
async def blocks_in_a_task() -> None:
    async def child() -> None:
        time.sleep(BLOCK_SECONDS)

    await asyncio.create_task(child())  # not on the activity's own stack


@workflow.defn(sandboxed=False)
class RunsOneActivity:
    @workflow.run
    async def run(self, name: str) -> None:
        await workflow.execute_activity(name, start_to_close_timeout=timedelta(seconds=30))


async def run_activity(client: Client, task_queue: str, name: str) -> str:
    """Run activity `name` on a worker with the watchdog; returns the workflow id."""
    watchdog = LoopWatchdog(THRESHOLD_SECONDS)
    workflow_id = f"blocked-{uuid.uuid4()}"
    async with (
        watchdog,
        Worker(
            client,
            task_queue=task_queue,
            workflows=[RunsOneActivity],
            activities=[sleeps_on_the_loop, blocks_in_a_task],
            interceptors=[watchdog.interceptor],
        ),
    ):
        await client.execute_workflow(
            RunsOneActivity.run, name, id=workflow_id, task_queue=task_queue
        )
        await asyncio.sleep(2 * watchdog.interval)  # the watchdog sees the loop run again
    return workflow_id


def warnings_from(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """The first of the watchdog's warnings that contains `text`, and those after it.

    On a busy machine the test's own event loop may miss a tick or two elsewhere too.
    """
    records = [r for r in caplog.records if r.name.endswith(".watchdog")]
    first = next(i for i, record in enumerate(records) if text in record.getMessage())
    return records[first:]


async def test_the_warning_names_the_blocking_activity_and_line(
    client: Client, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LoopWatchdog.__module__):
        workflow_id = await run_activity(client, task_queue, "sleeps_on_the_loop")
    blocked, recovered, *_ = warnings_from(caplog, "by activity sleeps_on_the_loop (")
    message = blocked.getMessage()
    assert message.startswith(f"event loop blocked for over {THRESHOLD_SECONDS}s")
    assert f"by activity sleeps_on_the_loop (workflow_id={workflow_id} activity_id=1" in message
    lines, first = inspect.getsourcelines(sleeps_on_the_loop)
    sleep_line = first + next(i for i, line in enumerate(lines) if "time.sleep" in line)
    assert f"at {__file__}:{sleep_line} in sleeps_on_the_loop:" in message
    assert blocked.temporal_activity["workflow_id"] == workflow_id  # type: ignore[attr-defined]
    ran_again = recovered.getMessage()
    assert ran_again.startswith("event loop ran again after being blocked for ")
    seconds = float(ran_again.rsplit(" ", 1)[1].removesuffix("s"))
    assert THRESHOLD_SECONDS < seconds <= BLOCK_SECONDS + 1  # slack for a busy machine


async def test_blocking_in_a_task_names_the_running_activities(
    client: Client, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LoopWatchdog.__module__):
        workflow_id = await run_activity(client, task_queue, "blocks_in_a_task")
    blocked, *_ = warnings_from(caplog, " in child:")
    message = blocked.getMessage()
    assert f"while these activities ran: blocks_in_a_task (workflow_id={workflow_id}" in message

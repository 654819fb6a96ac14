"""The event-loop watchdog catches a real activity blocking a real worker's event loop."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from {{ cookiecutter.package_name }}.runtime.watchdog import (
    LoopWatchdog,
)

THRESHOLD_SECONDS = 0.5
GUARD_SECONDS = 60.0  # ends a broken test; no speed makes the test pass or fail
BLOCKED = "event loop blocked for over "
RAN_AGAIN = "event loop ran again after being blocked for "


class LoopBlocker(logging.Handler):
    """Activities that block the event loop until the watchdog has warned about them.

    The blocker is a logging handler on the watchdog's logger: the watchdog's warning about
    this block (`culprit` in its message) releases `hold`, which the activity waits for with
    the loop blocked. So the loop is blocked exactly until the watchdog has seen it, however
    fast the machine or late the watchdog's thread. `hold` is a plain lock: its `acquire`
    adds no Python frame, so the activity's own line is where the loop is blocked.
    """

    def __init__(self, culprit: str) -> None:
        super().__init__(logging.WARNING)
        self.culprit = culprit
        self.hold = threading.Lock()
        self.hold.acquire()
        self.warned = threading.Event()
        # Every record of the watchdog's, kept here: caplog's handler (on the root logger)
        # sees a record only after this one has released the activity, maybe too late.
        self.records: list[logging.LogRecord] = []

    def is_the_warning(self, record: logging.LogRecord) -> bool:
        """Whether `record` is the watchdog's warning about this block."""
        message = record.getMessage()
        return message.startswith(BLOCKED) and self.culprit in message

    def emit(self, record: logging.LogRecord) -> None:  # on the watchdog's thread
        self.records.append(record)
        if self.is_the_warning(record) and not self.warned.is_set():
            self.warned.set()
            self.hold.release()

    @activity.defn
    async def sleeps_on_the_loop(self) -> None:
        self.hold.acquire(timeout=GUARD_SECONDS)  # a blocking wait: what the watchdog is for

    @activity.defn
    async def blocks_in_a_task(self) -> None:
        async def child() -> None:
            self.hold.acquire(timeout=GUARD_SECONDS)

        await asyncio.create_task(child())  # not on the activity's own stack


@workflow.defn(sandboxed=False)
class RunsOneActivity:
    @workflow.run
    async def run(self, name: str) -> None:
        await workflow.execute_activity(name, start_to_close_timeout=timedelta(seconds=300))


async def run_activity(
    client: Client,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
    blocker: LoopBlocker,
    name: str,
) -> tuple[str, logging.LogRecord, logging.LogRecord]:
    """Run `blocker`'s activity `name` on a worker with the watchdog.

    Returns the workflow id, the watchdog's warning about the block, and its next one (that
    the loop ran again). On a busy machine the loop may also miss its ticks elsewhere: the
    warnings are found by what they say, not by their position.
    """
    watchdog = LoopWatchdog(THRESHOLD_SECONDS)
    workflow_id = f"blocked-{uuid.uuid4()}"
    logger = logging.getLogger(LoopWatchdog.__module__)
    logger.addHandler(blocker)
    try:
        async with (
            watchdog,
            Worker(
                client,
                task_queue=task_queue,
                workflows=[RunsOneActivity],
                activities=[blocker.sleeps_on_the_loop, blocker.blocks_in_a_task],
                interceptors=[watchdog.interceptor],
            ),
        ):
            await client.execute_workflow(
                RunsOneActivity.run, name, id=workflow_id, task_queue=task_queue
            )
            assert blocker.warned.is_set(), "the watchdog never warned about the block"
            records = list(blocker.records)
            first = next(i for i, r in enumerate(records) if blocker.is_the_warning(r))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + GUARD_SECONDS
            while len(records) == first + 1:  # the watchdog's next word: the loop ran again
                assert loop.time() < deadline, "the watchdog never said the loop ran again"
                await asyncio.sleep(0.02)
                records = list(blocker.records)
            return workflow_id, records[first], records[first + 1]
    finally:
        logger.removeHandler(blocker)
        if not blocker.warned.is_set():
            blocker.hold.release()  # a failed test must not leave an activity blocked


async def test_the_warning_names_the_blocking_activity_and_line(
    client: Client, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = LoopBlocker("by activity sleeps_on_the_loop (")
    with caplog.at_level(logging.WARNING, logger=LoopWatchdog.__module__):
        workflow_id, blocked, recovered = await run_activity(
            client, task_queue, caplog, blocker, "sleeps_on_the_loop"
        )
    message = blocked.getMessage()
    assert message.startswith(f"{BLOCKED}{THRESHOLD_SECONDS:g}s")
    assert f"by activity sleeps_on_the_loop (workflow_id={workflow_id} activity_id=1" in message
    lines, first = inspect.getsourcelines(LoopBlocker.sleeps_on_the_loop)
    blocking_line = first + next(i for i, line in enumerate(lines) if ".acquire(" in line)
    assert f"at {__file__}:{blocking_line} in sleeps_on_the_loop:" in message
    assert blocked.temporal_activity["workflow_id"] == workflow_id  # type: ignore[attr-defined]
    ran_again = recovered.getMessage()
    assert ran_again.startswith(RAN_AGAIN)
    seconds = float(ran_again.rsplit(" ", 1)[1].removesuffix("s"))
    # The loop was blocked for over the threshold (it was released only once the watchdog saw
    # that); the message rounds to tenths, so "0.5" may stand for 0.53. No upper bound: a
    # busy machine may take any time to run the loop again, which says nothing about the code.
    assert seconds >= THRESHOLD_SECONDS


async def test_blocking_in_a_task_names_the_running_activities(
    client: Client, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = LoopBlocker(" in child:")
    with caplog.at_level(logging.WARNING, logger=LoopWatchdog.__module__):
        workflow_id, blocked, recovered = await run_activity(
            client, task_queue, caplog, blocker, "blocks_in_a_task"
        )
    message = blocked.getMessage()
    assert f"while these activities ran: blocks_in_a_task (workflow_id={workflow_id}" in message
    assert recovered.getMessage().startswith(RAN_AGAIN)

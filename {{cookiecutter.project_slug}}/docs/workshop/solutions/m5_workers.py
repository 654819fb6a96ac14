"""Module 5, solved: the activity heartbeats, so a dead worker is noticed in seconds."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

STEPS = 30


@activity.defn
async def long_task(steps: int) -> int:
    """Work for `steps` x 0.1 s; return the pid of the worker process that did it."""
    for _ in range(steps):
        await asyncio.sleep(0.1)  # one step of the work
        # "Still alive". The SDK sends at most one heartbeat per 0.8 x heartbeat timeout
        # to the server, so calling it often is cheap.
        activity.heartbeat()
    return os.getpid()


@workflow.defn
class LongWorkflow:
    @workflow.run
    async def run(self, steps: int) -> int:
        return await workflow.execute_activity(
            long_task,
            steps,
            start_to_close_timeout=timedelta(seconds=90),
            # Silence for 2 s means the worker is gone: the attempt fails and is retried
            # (after 1 s) on whichever worker polls the task queue first.
            heartbeat_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1)),
        )


WORKFLOWS = [LongWorkflow]
ACTIVITIES = [long_task]

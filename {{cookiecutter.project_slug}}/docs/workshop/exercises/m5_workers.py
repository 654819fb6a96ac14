"""Module 5: three workers on one task queue; kill the busy one (see 05-workers.md).

`long_task` works for STEPS x 0.1 s and returns the process id of the worker that ran
it. When that worker is killed, the work should move to another worker within seconds.
As written, the server cannot tell a dead worker from a slow one until the attempt's
start-to-close timeout (90 s) has passed. Fix that.
"""

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
    return os.getpid()


@workflow.defn
class LongWorkflow:
    @workflow.run
    async def run(self, steps: int) -> int:
        return await workflow.execute_activity(
            long_task,
            steps,
            start_to_close_timeout=timedelta(seconds=90),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1)),
        )


WORKFLOWS = [LongWorkflow]
ACTIVITIES = [long_task]

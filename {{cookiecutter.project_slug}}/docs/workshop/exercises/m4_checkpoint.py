"""Module 4: survive `kill -9` of the worker without starting over (see 04-checkpoint.md).

`slow_squares` works through ITEMS items, 0.1 s each. When its worker dies, Temporal
retries it on another worker, after the heartbeat timeout, from the start. Save its
progress with the project's `Checkpoint`, in the state store at `request.store_url`, so
that a retry continues where the last attempt stopped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    # Imported for you: the task uses them.
    from {{ cookiecutter.package_name }}.runtime.checkpoint import (  # noqa: F401
        Checkpoint,
    )
    from {{ cookiecutter.package_name }}.runtime.store import (  # noqa: F401
        open_store,
    )

ITEMS = 30


@dataclass
class SquaresInput:
    count: int
    store_url: str  # the state store for checkpoints, e.g. sqlite:///.state/workshop.db
    log_path: str  # where work_on notes each item it finished


class Progress(BaseModel):
    """What a checkpoint saves: the results so far."""

    squares: list[int] = []


async def work_on(n: int, log_path: str) -> int:
    """One item of slow work. Leave it as it is: the check reads the lines it writes."""
    await asyncio.sleep(0.1)
    line = f"{activity.info().attempt} {n}\n"
    await asyncio.to_thread(_append, log_path, line)  # files block: not on the event loop
    return n * n


def _append(path: str, line: str) -> None:
    with Path(path).open("a", encoding="utf-8") as log:
        log.write(line)


@activity.defn
async def slow_squares(request: SquaresInput) -> list[int]:
    squares: list[int] = []
    for n in range(request.count):
        squares.append(await work_on(n, request.log_path))
        activity.heartbeat(n)
    return squares


@workflow.defn
class SquaresWorkflow:
    @workflow.run
    async def run(self, request: SquaresInput) -> list[int]:
        return await workflow.execute_activity(
            slow_squares,
            request,
            start_to_close_timeout=timedelta(seconds=60),
            # A worker that dies stops heartbeating: after 2 s the attempt has failed and
            # the retry (1 s later) goes to any worker polling the task queue.
            heartbeat_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1)),
        )


WORKFLOWS = [SquaresWorkflow]
ACTIVITIES = [slow_squares]

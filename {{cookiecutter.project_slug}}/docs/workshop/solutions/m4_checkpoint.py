"""Module 4, solved: the activity saves its progress and a retry resumes from it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from {{ cookiecutter.package_name }}.runtime.checkpoint import (
        Checkpoint,
    )
    from {{ cookiecutter.package_name }}.runtime.store import (
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
    async with open_store(request.store_url) as store:
        # The key is the same for every attempt of this activity in this workflow run.
        checkpoint = Checkpoint.for_current_activity(
            store, Progress, every_items=5, every_seconds=1
        )
        progress = await checkpoint.load() or Progress()  # None on the first attempt
        if progress.squares:
            activity.logger.info("resuming after %d items", len(progress.squares))
        for n in range(len(progress.squares), request.count):
            progress.squares.append(await work_on(n, request.log_path))
            activity.heartbeat(n)  # liveness, and a small cursor for the UI
            await checkpoint.maybe_save(progress)  # every 5 items or 1 s: a retry redoes <= 5
        await checkpoint.clear()  # done: nothing is left to resume
        return progress.squares


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

"""One workshop worker as its own process, so that a check can `kill -9` it.

    python -m docs.workshop.worker MODULE ADDRESS TASK_QUEUE IDENTITY [HOLD_FOLDER HEARTBEATS]

MODULE is an exercise or solution module with `WORKFLOWS` and `ACTIVITIES` lists. The
worker prints `ready` once it polls, and stops on SIGTERM or SIGINT.

With HOLD_FOLDER, the worker freezes itself (SIGSTOP) in the first attempt of an activity,
once that attempt has heartbeated HEARTBEATS times, at its next call of `activity.info()`
(module 4's `work_on` makes one before it notes each item; with 0, as the attempt starts).
It first creates the file HOLD_FOLDER/IDENTITY. So a check kills it at a known point of the
work, not at a moment that depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

# After a worker dies, the workflows it had cached wait this long for it before any worker
# takes their next task (the SDK's default is 10 s; short here so the checks stay quick).
STICKY_TIMEOUT = timedelta(seconds=2)


class Hold(Interceptor):
    """Freeze this process at a known point of an activity's first attempt (see above)."""

    def __init__(self, marker: Path, heartbeats: int) -> None:
        self.marker = marker
        self.heartbeats = heartbeats

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _HoldInbound(next, self)

    def freeze(self) -> None:
        self.marker.touch()
        os.kill(os.getpid(), signal.SIGSTOP)  # until the check kills it


class _HoldOutbound(ActivityOutboundInterceptor):
    def __init__(self, next: ActivityOutboundInterceptor, hold: Hold) -> None:
        super().__init__(next)
        self.hold = hold
        self.heartbeats = 0

    def info(self) -> activity.Info:
        info = super().info()
        if info.attempt == 1 and self.heartbeats >= self.hold.heartbeats:
            self.hold.freeze()
        return info

    def heartbeat(self, *details: Any) -> None:
        super().heartbeat(*details)
        self.heartbeats += 1


class _HoldInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, hold: Hold) -> None:
        super().__init__(next)
        self.hold = hold

    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        self.outbound = _HoldOutbound(outbound, self.hold)
        super().init(self.outbound)

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        self.outbound.info()  # freezes here if the hold is after 0 heartbeats
        return await super().execute_activity(input)


async def serve(
    module_name: str, address: str, task_queue: str, identity: str, hold: Hold | None
) -> None:
    """Poll `task_queue` with the module's workflows and activities until a signal."""
    module = importlib.import_module(module_name)
    client = await Client.connect(address, identity=identity)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=module.WORKFLOWS,
        activities=module.ACTIVITIES,
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
        interceptors=[hold] if hold else [],
    ):
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    module_name, address, task_queue, identity, *hold_args = sys.argv[1:]
    hold = None
    if hold_args:
        folder, heartbeats = hold_args
        hold = Hold(Path(folder) / identity, int(heartbeats))
    asyncio.run(serve(module_name, address, task_queue, identity, hold))
    sys.stdout.flush()
    os._exit(0)  # no interpreter finalisation: the SDK's threads can crash it (sdk-python #300)

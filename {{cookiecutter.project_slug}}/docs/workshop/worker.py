"""One workshop worker as its own process, so that a check can `kill -9` it.

    python -m docs.workshop.worker MODULE ADDRESS TASK_QUEUE IDENTITY

MODULE is an exercise or solution module with `WORKFLOWS` and `ACTIVITIES` lists. The
worker prints `ready` once it polls, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

# After a worker dies, the workflows it had cached wait this long for it before any worker
# takes their next task (the SDK's default is 10 s; short here so the checks stay quick).
STICKY_TIMEOUT = timedelta(seconds=2)


async def serve(module_name: str, address: str, task_queue: str, identity: str) -> None:
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
    ):
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(*sys.argv[1:5]))
    sys.stdout.flush()
    os._exit(0)  # no interpreter finalisation: the SDK's threads can crash it (sdk-python #300)

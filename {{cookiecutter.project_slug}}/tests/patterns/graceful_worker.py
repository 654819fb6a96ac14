"""The graceful worker, copied alone: a worker with health endpoints that drains on SIGTERM.

Started by tests/test_patterns.py in a venv holding only the files and dependencies that
docs/patterns.md lists, with the package copied as `yourpackage`. Arguments: the Temporal
address, the task queue, the health port. The test runs a workflow that calls `pause` on
this worker, sends SIGTERM while it runs, and watches /readyz, /healthz and the exit code.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker
from yourpackage.graceful import run_until_stopped, stop_on_signals
from yourpackage.health import start_health_server


@activity.defn
async def pause(seconds: float) -> int:
    """Sleep (while the test sends SIGTERM); the attempt number says whether it was retried."""
    print("activity started", flush=True)
    await asyncio.sleep(seconds)
    return activity.info().attempt


async def main(address: str, task_queue: str, health_port: int) -> None:
    stop = asyncio.Event()
    client = await Client.connect(address)
    stop_on_signals(stop)
    worker = Worker(
        client,
        task_queue=task_queue,
        activities=[pause],
        graceful_shutdown_timeout=timedelta(seconds=10),
    )

    def ready() -> bool:
        return worker.is_running and not stop.is_set()

    async with await start_health_server(health_port, ready, host="127.0.0.1"):
        await run_until_stopped(worker, stop)
    print("stopped", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    # Leave without interpreter finalisation, where the SDK's threads can crash the process
    # after a clean drain (sdk-python issue 300): seen here as exit -6 under load.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

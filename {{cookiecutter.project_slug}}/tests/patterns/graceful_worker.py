"""The graceful worker, copied alone: a worker with health endpoints that drains on SIGTERM.

Started by tests/test_patterns.py in a venv holding only the files and dependencies that
docs/patterns.md lists, with the package copied as `yourpackage`. Arguments: the Temporal
address, the task queue, the health port (0: any free one; the port is printed). The test
runs a workflow that calls `pause` on this worker, sends SIGTERM while it runs, and watches
/readyz, /healthz and the exit code.

`pause` waits for a file the test creates once it has seen all that: the activity is
certainly running during those checks, however slow or fast the machine is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker
from yourpackage.runtime.graceful import run_until_stopped, stop_on_signals
from yourpackage.runtime.health import start_health_server

# Far above what the test needs: only a broken test ever waits this long.
GRACE = timedelta(seconds=300)


@activity.defn
async def pause(gate_file: str) -> int:
    """Wait until `gate_file` exists (the test creates it); the attempt number says whether
    it was retried."""
    print("activity started", flush=True)
    while not Path(gate_file).exists():
        await asyncio.sleep(0.02)
    return activity.info().attempt


async def main(address: str, task_queue: str, health_port: int) -> None:
    stop = asyncio.Event()
    client = await Client.connect(address)
    stop_on_signals(stop)
    worker = Worker(
        client, task_queue=task_queue, activities=[pause], graceful_shutdown_timeout=GRACE
    )

    def ready() -> bool:
        return worker.is_running and not stop.is_set()

    async with await start_health_server(health_port, ready, host="127.0.0.1") as server:
        print(f"health port {server.sockets[0].getsockname()[1]}", flush=True)
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

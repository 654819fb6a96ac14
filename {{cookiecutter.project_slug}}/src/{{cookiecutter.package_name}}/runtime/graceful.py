"""Graceful shutdown of a Temporal worker: on SIGTERM or SIGINT, drain, then return.

Kubernetes, systemd, compose and Ctrl-C stop a process with SIGTERM or SIGINT. With no
handler Python dies at once, and every running activity is retried only after its
heartbeat (or start-to-close) timeout. Here the signal only sets an event; the worker then
stops polling, lets running activities finish within its `graceful_shutdown_timeout`
(zero unless you set it: give the Worker one) and `run_until_stopped` returns, so the
process exits 0.

    stop = asyncio.Event()
    client = await Client.connect("localhost:7233")
    stop_on_signals(stop)  # after connecting: a signal while connecting still ends the process
    worker = Worker(client, ..., graceful_shutdown_timeout=timedelta(seconds=10))
    await run_until_stopped(worker, stop)

Depends only on the standard library and temporalio.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from temporalio.worker import Worker

log = logging.getLogger(__name__)


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set `stop` on SIGTERM or SIGINT instead of dying (call it inside the running loop)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def run_until_stopped(worker: Worker, stop: asyncio.Event) -> None:
    """Run `worker` until `stop` is set (then drain) or until it fails on its own (re-raised)."""
    running = asyncio.create_task(worker.run())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not running.done():
        grace = worker.config().get("graceful_shutdown_timeout", timedelta())
        log.info(
            "signal received: draining, running activities have %gs to finish",
            grace.total_seconds(),
        )
        await worker.shutdown()
    stopping.cancel()
    await running

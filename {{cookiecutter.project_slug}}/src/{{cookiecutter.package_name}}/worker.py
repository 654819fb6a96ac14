"""The worker process: polls one task queue and runs workflows and activities.

Run several of these on one task queue (production runs at least three): Temporal hands
each task to whichever worker polls first, so workers add capacity and availability
without any coordination between them.

On SIGTERM or SIGINT the worker drains: it stops polling, lets running activities finish
within `graceful_shutdown_seconds`, and exits 0. Anything still running after that is
cancelled and retried by another worker.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from .activities.duplicates import DuplicateActivities
from .activities.fetch import FetchActivities
from .activities.fingerprint import FingerprintActivities
from .client import connect
from .pool import CpuPool
from .settings import Settings
from .store import StateStore, open_store
from .workflows import PipelineWorkflow

# The SDK sends heartbeats at most every 0.8 x heartbeat timeout (capped by this), and a
# cancellation only reaches an activity in a heartbeat's reply: a short cap keeps
# cancellation and worker-death detection prompt for a few cheap RPCs.
HEARTBEAT_THROTTLE = timedelta(seconds=1)

log = logging.getLogger(__name__)


def build_worker(client: Client, settings: Settings, store: StateStore, pool: CpuPool) -> Worker:
    """The worker with every workflow and activity of the service registered."""
    fingerprint = FingerprintActivities(
        store,
        pool,
        chunk_size=settings.cpu_chunk_size,
        checkpoint_every_items=settings.checkpoint_every_items,
        checkpoint_every_seconds=settings.checkpoint_every_seconds,
        memo_ttl_seconds=settings.memo_ttl_seconds,
    )
    duplicates = DuplicateActivities(store, pool)
    fetch = FetchActivities(
        store,
        concurrency=settings.fetch_concurrency,
        timeout_seconds=settings.fetch_timeout_seconds,
        retries=settings.fetch_retries,
        max_bytes=settings.fetch_max_bytes,
    )
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[PipelineWorkflow],
        activities=[
            fetch.fetch_documents,
            fingerprint.fingerprint_documents,
            duplicates.group_near_duplicates,
        ],
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        sticky_queue_schedule_to_start_timeout=timedelta(
            seconds=settings.sticky_queue_timeout_seconds
        ),
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )


async def run_worker(settings: Settings) -> None:
    """Connect, run until SIGTERM or SIGINT, then drain and return."""
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # The pool is shut down after the worker has drained (`with` exits last).
    with CpuPool(settings.cpu_processes) as pool:
        warm_up = asyncio.create_task(pool.warm_up())  # in the background, while polling starts
        async with open_store(
            settings.state_store_url, password=settings.state_store_password
        ) as store:
            await _run_until_signal(build_worker(client, settings, store, pool), settings, stop)
        await warm_up
    log.info("worker stopped")


async def _run_until_signal(worker: Worker, settings: Settings, stop: asyncio.Event) -> None:
    """Run `worker` until `stop` is set (then drain) or until it fails on its own."""
    running = asyncio.create_task(worker.run())
    stopping = asyncio.create_task(stop.wait())
    client = worker.client
    log.info(
        "worker started: address=%s namespace=%s task_queue=%s identity=%s processes=%d",
        client.service_client.config.target_host,
        client.namespace,
        settings.task_queue,
        client.identity,
        settings.cpu_processes,
    )
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not running.done():
        log.info(
            "signal received: draining, running activities have %gs to finish",
            settings.graceful_shutdown_seconds,
        )
        await worker.shutdown()
    stopping.cancel()
    await running  # re-raises if the worker failed on its own

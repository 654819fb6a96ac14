"""The worker process: polls one task queue and runs workflows and activities.

Run several of these on one task queue (production runs at least three): Temporal hands
each task to whichever worker polls first, so workers add capacity and availability
without any coordination between them.

On SIGTERM or SIGINT the worker drains (`graceful.py`): it stops polling, lets running
activities finish within `graceful_shutdown_seconds`, and exits 0. Anything still running
after that is cancelled and retried by another worker.

While it runs, the worker serves `/healthz` and `/readyz` (`health.py`) and Prometheus
`/metrics` (`metrics.py`), and a watchdog names any activity that blocks the event loop
(`watchdog.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Interceptor, Worker

from .activities.duplicates import DuplicateActivities
from .activities.fetch import FetchActivities
from .activities.fingerprint import FingerprintActivities
from .client import connect
from .graceful import run_until_stopped, stop_on_signals
from .health import start_health_server
from .metrics import telemetry_runtime
from .pool import CpuPool
from .settings import ENV_PREFIX, Settings
from .store import StateStore, open_store
from .watchdog import LoopWatchdog
from .workflows import BatchWorkflow, PipelineWorkflow

# The SDK sends heartbeats at most every 0.8 x heartbeat timeout (capped by this), and a
# cancellation only reaches an activity in a heartbeat's reply: a short cap keeps
# cancellation and worker-death detection prompt for a few cheap RPCs.
HEARTBEAT_THROTTLE = timedelta(seconds=1)

log = logging.getLogger(__name__)


class PortUnavailableError(Exception):
    """The health or metrics port from the settings cannot be served on."""

    def __init__(self, setting: str, port: int, reason: object) -> None:
        super().__init__(
            f"{ENV_PREFIX}{setting.upper()}={port}: {reason}"
            " (choose another port, or 0 to serve none)"
        )


def build_worker(
    client: Client,
    settings: Settings,
    store: StateStore,
    pool: CpuPool,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
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
        workflows=[PipelineWorkflow, BatchWorkflow],
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
        interceptors=interceptors,
    )


async def run_worker(
    settings: Settings, *, wrap_store: Callable[[StateStore], StateStore] | None = None
) -> None:
    """Serve health and metrics, connect, run until SIGTERM or SIGINT, then drain and return.

    `wrap_store` lets a test put a wrapper around the state store the activities use (a gate
    that holds them at a known point: tests/gate.py); the service itself passes none.
    """
    runtime = _telemetry(settings.metrics_port)  # serves /metrics from here on
    worker: Worker | None = None
    stop = asyncio.Event()

    def ready() -> bool:  # /readyz: polling, and not draining
        return worker is not None and worker.is_running and not stop.is_set()

    # /healthz answers while connecting too: a worker waiting for its server is alive.
    async with await _health(settings.health_port, ready):
        client = await connect(settings, runtime)
        stop_on_signals(stop)  # not before: a signal while connecting ends the process

        # The pool is shut down after the worker has drained (`with` exits last).
        with CpuPool(settings.cpu_processes) as pool:
            warm_up = asyncio.create_task(pool.warm_up())  # in the background
            store_password = settings.state_store_password
            async with (
                open_store(settings.state_store_url, password=store_password) as store,
                LoopWatchdog(settings.loop_lag_warning_seconds) as watchdog,
            ):
                if wrap_store is not None:
                    store = wrap_store(store)
                worker = build_worker(client, settings, store, pool, [watchdog.interceptor])
                _log_started(worker, settings)
                await run_until_stopped(worker, stop)
            await warm_up
    log.info("worker stopped")


def _log_started(worker: Worker, settings: Settings) -> None:
    client = worker.client
    log.info(
        "worker started: address=%s namespace=%s task_queue=%s identity=%s processes=%d"
        " health_port=%d metrics_port=%d",
        client.service_client.config.target_host,
        client.namespace,
        settings.task_queue,
        client.identity,
        settings.cpu_processes,
        settings.health_port,
        settings.metrics_port,
    )


def _telemetry(metrics_port: int) -> Runtime:
    try:
        return telemetry_runtime(metrics_port)
    except ValueError as exc:  # the SDK's error when the exporter cannot bind
        raise PortUnavailableError("metrics_port", metrics_port, exc) from None


async def _health(
    port: int, ready: Callable[[], bool]
) -> contextlib.AbstractAsyncContextManager[object]:
    if not port:
        return contextlib.nullcontext()
    try:
        return await start_health_server(port, ready)
    except OSError as exc:
        raise PortUnavailableError("health_port", port, exc) from None

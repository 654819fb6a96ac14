"""The worker process: polls one task queue and runs the workflows and activities that
`app.register` names.

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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Interceptor, Worker

from .client import connect
from .graceful import run_until_stopped, stop_on_signals
from .health import start_health_server
from .metrics import telemetry_runtime
from .pool import CpuPool
from .settings import ENV_PREFIX, RuntimeSettings
from .store import SqliteStateStore, StateStore, StateStoreError
from .watchdog import LoopWatchdog

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


class StoreUnusableError(Exception):
    """The SQLite state store of the settings cannot be opened or written: a bad setting."""


async def check_sqlite_store(settings: RuntimeSettings) -> None:
    """Open a SQLite state store once, at start: a path that cannot be created or written is
    a bad setting, which stops the worker with one line (rather than failing every activity
    later). A Redis that is down at start is not checked here: it may be starting too, and
    activities retry until it is back (see store.py)."""
    async with settings.open_store() as store:
        if isinstance(store, SqliteStateStore):
            try:
                await store.get("start-check")
            except StateStoreError as exc:
                raise StoreUnusableError(f"{ENV_PREFIX}STATE_STORE_URL: {exc}") from None


@dataclass(frozen=True)
class Registration:
    """What one worker runs: workflow classes, and activities (functions or bound methods)."""

    workflows: Sequence[type]
    activities: Sequence[Callable[..., Any]]


S = TypeVar("S", bound=RuntimeSettings)


@dataclass(frozen=True)
class Service(Generic[S]):
    """A service on this runtime: its settings class, and what its workers register.

    `register` gets the settings, the worker's state store and process pool, and builds the
    activities from them (the runtime owns their lifetimes). `app.py` makes the one instance.
    """

    settings: type[S]
    register: Callable[[S, StateStore, CpuPool], Registration]


def build_worker(
    client: Client,
    settings: RuntimeSettings,
    registration: Registration,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    """A worker polling `settings.task_queue` for what `registration` holds."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=registration.workflows,
        activities=registration.activities,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        sticky_queue_schedule_to_start_timeout=timedelta(
            seconds=settings.sticky_queue_timeout_seconds
        ),
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        interceptors=interceptors,
    )


async def run_worker(
    service: Service[S],
    settings: S,
    *,
    wrap_store: Callable[[StateStore], StateStore] | None = None,
) -> None:
    """Serve health and metrics, connect, run until SIGTERM or SIGINT, then drain and return.

    `wrap_store` lets a test put a wrapper around the state store the activities use (a gate
    that holds them at a known point: tests/toolkit/gate.py); the service itself passes none.
    """
    for warning in settings.security_warnings():
        log.warning("%s", warning)
    await check_sqlite_store(settings)
    runtime = _telemetry(settings.metrics_port, settings.listen_host)  # serves /metrics now
    worker: Worker | None = None
    stop = asyncio.Event()

    def ready() -> bool:  # /readyz: polling, and not draining
        return worker is not None and worker.is_running and not stop.is_set()

    # /healthz answers while connecting too: a worker waiting for its server is alive.
    async with await _health(settings.health_port, ready, settings.listen_host):
        client = await connect(settings, runtime)
        stop_on_signals(stop)  # not before: a signal while connecting ends the process

        # The pool is shut down after the worker has drained (`with` exits last).
        with CpuPool(settings.cpu_processes) as pool:
            warm_up = asyncio.create_task(pool.warm_up())  # in the background
            async with (
                settings.open_store() as store,
                LoopWatchdog(settings.loop_lag_warning_seconds) as watchdog,
            ):
                if wrap_store is not None:
                    store = wrap_store(store)
                registration = service.register(settings, store, pool)
                worker = build_worker(client, settings, registration, [watchdog.interceptor])
                _log_started(worker, settings)
                await run_until_stopped(worker, stop)
            await warm_up
    log.info("worker stopped")


def _log_started(worker: Worker, settings: RuntimeSettings) -> None:
    client = worker.client
    log.info(
        "worker started: address=%s namespace=%s task_queue=%s identity=%s processes=%d"
        " listen_host=%s health_port=%d metrics_port=%d",
        client.service_client.config.target_host,
        client.namespace,
        settings.task_queue,
        client.identity,
        settings.cpu_processes,
        settings.listen_host,
        settings.health_port,
        settings.metrics_port,
    )


def _telemetry(metrics_port: int, host: str) -> Runtime:
    try:
        return telemetry_runtime(metrics_port, host)
    except ValueError as exc:  # the SDK's error when the exporter cannot bind
        raise PortUnavailableError("metrics_port", metrics_port, exc) from None


async def _health(
    port: int, ready: Callable[[], bool], host: str
) -> contextlib.AbstractAsyncContextManager[object]:
    if not port:
        return contextlib.nullcontext()
    try:
        return await start_health_server(port, ready, host)
    except OSError as exc:
        raise PortUnavailableError("health_port", port, exc) from None

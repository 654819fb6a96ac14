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

Several workers on one machine (`make worker` in two terminals): a port left at its default
(`HEALTH_PORT` 8080, `METRICS_PORT` 9464) that another worker holds already is replaced by a
free one that the OS picks, with a warning; the "worker started" line names the ports served.
A port that is set (the environment, `.env`; the Kubernetes manifests set both) is served
or the worker stops at start naming the setting: probes and scrapers rely on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.runtime import Runtime
from temporalio.worker import (
    Interceptor,
    PollerBehaviorAutoscaling,
    Worker,
    WorkerDeploymentConfig,
    WorkerTuner,
)

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


class StartError(Exception):
    """The worker cannot start as configured: one line that says what to change."""


class PortUnavailableError(StartError):
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
    """What one worker runs: workflow classes, and activities (functions or bound methods).

    `versioning` states each workflow's versioning behaviour (PINNED or AUTO_UPGRADE; the
    README's "Versioned deploys"), applied when `worker_versioning` is on. It is a table here,
    not `@workflow.defn(versioning_behavior=...)`: a workflow defined that way never runs on
    an unversioned worker (its tasks fail with "versioning behavior cannot be specified
    without deployment options being set with versioned mode"), and versioning is off by
    default. The worker applies it as the deployment's default behaviour, so the workflows
    of one worker share one behaviour.
    """

    workflows: Sequence[type]
    activities: Sequence[Callable[..., Any]]
    versioning: Mapping[type, VersioningBehavior] = field(default_factory=dict)


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
    """A worker polling `settings.task_queue` for what `registration` holds, with the
    settings' tuner, pollers and Worker Versioning. Raises StartError for a registration
    that versioning cannot run."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=registration.workflows,
        activities=registration.activities,
        deployment_config=deployment_config(settings, registration),
        **tuning(settings),
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        sticky_queue_schedule_to_start_timeout=timedelta(
            seconds=settings.sticky_queue_timeout_seconds
        ),
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        interceptors=interceptors,
    )


def tuning(settings: RuntimeSettings) -> dict[str, Any]:
    """The Worker arguments for `worker_tuner`, the slot limits and `poller_autoscaling`."""
    options: dict[str, Any] = {}
    if settings.worker_tuner == "resource-based":
        options["tuner"] = WorkerTuner.create_resource_based(
            target_memory_usage=settings.target_memory_usage,
            target_cpu_usage=settings.target_cpu_usage,
        )
    else:
        options["max_concurrent_activities"] = settings.max_concurrent_activities
        options["max_concurrent_workflow_tasks"] = settings.max_concurrent_workflow_tasks
    if settings.poller_autoscaling:
        options["workflow_task_poller_behavior"] = PollerBehaviorAutoscaling()
        options["activity_task_poller_behavior"] = PollerBehaviorAutoscaling()
    return options


def deployment_config(
    settings: RuntimeSettings, registration: Registration
) -> WorkerDeploymentConfig | None:
    """Worker Versioning for this worker (None when `worker_versioning` is off)."""
    if not settings.worker_versioning:
        return None
    assert settings.build_id is not None  # the settings require one with versioning
    missing = [w.__name__ for w in registration.workflows if w not in registration.versioning]
    if missing:
        raise StartError(
            f"{ENV_PREFIX}WORKER_VERSIONING=true: {', '.join(missing)} state no versioning"
            " behaviour (add PINNED or AUTO_UPGRADE to Registration.versioning in app.py)"
        )
    behaviours = {registration.versioning[w] for w in registration.workflows}
    if len(behaviours) > 1:
        raise StartError(
            f"{ENV_PREFIX}WORKER_VERSIONING=true: one worker's workflows share one"
            " versioning behaviour; run PINNED and AUTO_UPGRADE workflows on two task queues"
        )
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(settings.deployment_name, settings.build_id),
        use_worker_versioning=True,
        default_versioning_behavior=behaviours.pop()
        if behaviours
        else VersioningBehavior.UNSPECIFIED,
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
    runtime, metrics_port = _telemetry(settings)  # serves /metrics from here on
    worker: Worker | None = None
    stop = asyncio.Event()

    def ready() -> bool:  # /readyz: polling, and not draining
        return worker is not None and worker.is_running and not stop.is_set()

    # /healthz answers while connecting too: a worker waiting for its server is alive.
    health, health_port = await _health(settings, ready)
    async with health:
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
                _log_started(worker, settings, health_port, metrics_port)
                await run_until_stopped(worker, stop)
            await warm_up
    log.info("worker stopped")


def _log_started(
    worker: Worker, settings: RuntimeSettings, health_port: int, metrics_port: int
) -> None:
    client = worker.client
    log.info(
        "worker started: address=%s namespace=%s task_queue=%s identity=%s processes=%d"
        " tuner=%s versioning=%s listen_host=%s health_port=%d metrics_port=%d",
        client.service_client.config.target_host,
        client.namespace,
        settings.task_queue,
        client.identity,
        settings.cpu_processes,
        settings.worker_tuner,
        f"{settings.deployment_name}/{settings.build_id}" if settings.worker_versioning else "off",
        settings.listen_host,
        health_port,
        metrics_port,
    )


# Attempts at a free port for a default metrics port in use: the port is chosen here and
# bound by the SDK Core a moment later, so another program may take it in between.
FREE_PORT_ATTEMPTS = 5


def _may_move(settings: RuntimeSettings, name: str) -> bool:
    """A port at its default moves to a free one when taken; a port that is set never does."""
    return name not in settings.model_fields_set


def _moved(name: str, port: int, new_port: int) -> None:
    log.warning(
        "%s%s: port %d is in use (another worker on this machine?); serving on port %d"
        " instead (set %s%s to choose one)",
        ENV_PREFIX,
        name.upper(),
        port,
        new_port,
        ENV_PREFIX,
        name.upper(),
    )


def _free_port(host: str) -> int:
    """A port free on `host` now (the exporter binds it a moment later)."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _telemetry(settings: RuntimeSettings) -> tuple[Runtime, int]:
    """The runtime serving /metrics, and the port it serves on (0: none)."""
    port = settings.metrics_port
    try:
        return telemetry_runtime(port, settings.listen_host), port
    except ValueError as exc:  # the SDK's error when the exporter cannot bind
        if not (port and _may_move(settings, "metrics_port") and "in use" in str(exc)):
            raise PortUnavailableError("metrics_port", port, exc) from None
        error = exc
    for _ in range(FREE_PORT_ATTEMPTS):
        new_port = _free_port(settings.listen_host)
        try:
            runtime = telemetry_runtime(new_port, settings.listen_host)
        except ValueError as exc:
            error = exc
            continue
        _moved("metrics_port", port, new_port)
        return runtime, new_port
    raise PortUnavailableError("metrics_port", port, error) from None


async def _health(
    settings: RuntimeSettings, ready: Callable[[], bool]
) -> tuple[contextlib.AbstractAsyncContextManager[object], int]:
    """The health server (a context manager that closes it), and its port (0: none)."""
    port = settings.health_port
    if not port:
        return contextlib.nullcontext(), 0
    try:
        server = await start_health_server(port, ready, settings.listen_host)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or not _may_move(settings, "health_port"):
            raise PortUnavailableError("health_port", port, exc) from None
        # The OS picks a free port.
        server = await start_health_server(0, ready, settings.listen_host)
        _moved("health_port", port, server.sockets[0].getsockname()[1])
    return server, int(server.sockets[0].getsockname()[1])

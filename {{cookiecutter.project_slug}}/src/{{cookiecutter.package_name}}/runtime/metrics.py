"""Prometheus metrics: the Temporal SDK's own and the service's, on one endpoint.

The SDK's Core runtime serves `/metrics` itself (`PrometheusConfig`): task latencies,
poll and slot counts, `temporal_request` and the rest. The service's counters are made
with the SDK's metric meter, so they land on the same endpoint with no second HTTP server
and no extra dependency; inside an activity, `activity.metric_meter()` labels them with
the namespace, task queue and activity type.

    metrics = ServiceMetrics.for_current_activity()
    metrics.documents_fetched.add(len(documents))

Outside a worker (unit tests, `ActivityEnvironment`) the meter is a no-op. Counter names
start with `PREFIX`, the service's name with `_` for `-`: `<service>_documents_fetched`.

The runtime also carries the SDK Core's logging (`core_logging`). Left to the SDK's default,
the Core (its Rust part) prints its lines, such as `gRPC call query_workflow retried 5
times` while the server restarts, to stdout itself, with colour codes: in `run --json`
they would land before the document. Every runtime made here forwards them to the
`temporalio.core` Python logger instead, so they reach stderr in the service's log format
(plain or JSON). Each process makes one runtime: the worker with `telemetry_runtime`,
`run` with `default_runtime`.
"""

from __future__ import annotations

import functools
import logging

from temporalio import activity
from temporalio.common import MetricCounter, MetricMeter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from .. import SERVICE_NAME

PREFIX = SERVICE_NAME.replace("-", "_") + "_"
CORE_LOGGER = "temporalio.core"


def core_logging(level: str = "WARN") -> LoggingConfig:
    """The SDK Core's records at `level` or above (`ERROR`, `WARN`, `INFO`, `DEBUG`) to the
    `CORE_LOGGER` Python logger, never to the console; other Rust crates' at ERROR only.

    A record's logger name ends with the Core's target
    (`temporalio.core-sdk_core::temporalio_client::retry`); its message is the Core's,
    plain text, with the Core's fields appended (`{'error': 'Status { ... }'}`).
    """
    return LoggingConfig(
        filter=TelemetryFilter(core_level=level, other_level="ERROR"),
        forwarding=LogForwardingConfig(
            logger=logging.getLogger(CORE_LOGGER),
            prepend_target_on_message=False,  # the target is in the logger name already
        ),
    )


def bind_address(host: str, port: int) -> str:
    """`host:port`, with an IPv6 host in brackets (`[::]:9464`), as a socket address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def telemetry_runtime(metrics_port: int, host: str = "127.0.0.1") -> Runtime:
    """A runtime for the worker's client: metrics on `<host>:<metrics_port>/metrics`
    (none if 0), and the SDK Core's warnings sent through Python logging (`core_logging`:
    so they share the log format and go to stderr) instead of to stdout.

    Raises ValueError if the port cannot be bound. Create one per process.
    """
    metrics = None
    if metrics_port:
        metrics = PrometheusConfig(bind_address=bind_address(host, metrics_port))
    return Runtime(telemetry=TelemetryConfig(logging=core_logging(), metrics=metrics))


@functools.cache
def default_runtime() -> Runtime:
    """The process's runtime when it serves no metrics (`run`), made on first use.

    It becomes the SDK's default runtime too, so nothing in the process makes the SDK's own
    default, whose Core would print its log lines to stdout.
    """
    runtime = telemetry_runtime(0)
    Runtime.set_default(runtime, error_if_already_set=False)
    return runtime


class ServiceMetrics:
    """The service's own counters (what an activity did, beyond what the SDK counts)."""

    def __init__(self, meter: MetricMeter) -> None:
        def counter(name: str, description: str) -> MetricCounter:
            return meter.create_counter(PREFIX + name, description)

        self.documents_fetched = counter("documents_fetched", "Documents downloaded and stored")
        self.documents_failed = counter("documents_failed", "URLs that failed for good")
        self.signatures_computed = counter("signatures_computed", "Signatures computed")
        self.signatures_restored = counter(
            "signatures_restored", "Signatures taken from a checkpoint of an earlier attempt"
        )
        self.signatures_memoized = counter("signatures_memoized", "Signatures taken from the memo")
        self.checkpoint_saves = counter("checkpoint_saves", "Checkpoints saved")
        self.checkpoint_restores = counter(
            "checkpoint_restores", "Attempts that resumed from a checkpoint"
        )
        self.memo_hits = counter("memo_hits", "Memo lookups that found a value")
        self.memo_misses = counter("memo_misses", "Memo lookups that found none")

    @classmethod
    def for_current_activity(cls) -> ServiceMetrics:
        """The counters on the running activity's meter (call it inside the activity)."""
        return cls(activity.metric_meter())

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
"""

from __future__ import annotations

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

from . import SERVICE_NAME

PREFIX = SERVICE_NAME.replace("-", "_") + "_"


def telemetry_runtime(metrics_port: int) -> Runtime:
    """A runtime for the worker's client: metrics on `0.0.0.0:<metrics_port>/metrics`
    (none if 0), and the SDK Core's warnings sent through Python logging (so they share
    the log format) instead of straight to stderr.

    Raises ValueError if the port cannot be bound. Create one per process.
    """
    metrics = PrometheusConfig(bind_address=f"0.0.0.0:{metrics_port}") if metrics_port else None
    core_logs = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )
    return Runtime(telemetry=TelemetryConfig(logging=core_logs, metrics=metrics))


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

"""Tracing: OpenTelemetry spans from the starter through the workflow to each activity.

Off by default. On when an OTLP endpoint is set: `OTEL_ENDPOINT` of the settings (or the
standard `OTEL_EXPORTER_OTLP_ENDPOINT`), the base URL of an OTLP/HTTP receiver such as
`http://otel-collector:4318` (`/v1/traces` is added). `connect()` (client.py) then puts the
SDK's `TracingInterceptor` on the client; the worker built on that client uses it too, so
the starter's `StartWorkflow` span, the workflow's `RunWorkflow`, and each activity's
`StartActivity` and `RunActivity` share one trace (the context travels in Temporal headers).

The spans go to a `TracerProvider` of our own, not OpenTelemetry's global one: a library or
test that sets the global provider changes nothing here, and nothing here changes theirs.
Spans are batched and sent from a background thread (~60 us of CPU per span); `shutdown()`
sends what is left and is called before the process exits (`__main__.cli`). The exporter
reads the other standard variables itself (`OTEL_EXPORTER_OTLP_HEADERS` for a collector
that wants a token, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_COMPRESSION`).
`OTEL_SDK_DISABLED=true` turns tracing off whatever the endpoint.

OpenTelemetry is imported only when tracing is on: pool processes and a worker without
tracing do not pay for it.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from .settings import RuntimeSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.client import Interceptor

TRACES_PATH = "/v1/traces"  # OTLP/HTTP: the signal's path under the base URL
log = logging.getLogger(__name__)

_lock = threading.Lock()
_provider: TracerProvider | None = None


def enabled(settings: RuntimeSettings) -> bool:
    """Whether this process traces: an endpoint is set and OTEL_SDK_DISABLED is not true."""
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    return settings.otel_endpoint is not None and not disabled


def traces_url(endpoint: str) -> str:
    """The URL spans are posted to: the base URL plus `/v1/traces`, as the OTLP spec says."""
    return endpoint.rstrip("/") + TRACES_PATH


def tracer_provider(settings: RuntimeSettings) -> TracerProvider:
    """This process's provider, made on first use: the service's name, batched OTLP/HTTP."""
    global _provider
    with _lock:
        if _provider is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            assert settings.otel_endpoint is not None  # `enabled` checked it
            exporter = OTLPSpanExporter(endpoint=traces_url(settings.otel_endpoint))
            resource = Resource.create({SERVICE_NAME: settings.otel_service_name})
            provider = TracerProvider(resource=resource)
            provider.add_span_processor(BatchSpanProcessor(exporter))
            _provider = provider
            log.info(
                "tracing to %s as %r",
                traces_url(settings.otel_endpoint),
                settings.otel_service_name,
            )
        return _provider


def interceptors(settings: RuntimeSettings) -> list[Interceptor]:
    """What `connect()` adds to the client: the tracing interceptor, or nothing when off."""
    if not enabled(settings):
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tracer_provider(settings).get_tracer(__name__))]


def shutdown() -> None:
    """Send the spans still buffered and stop the exporter (before the process exits)."""
    global _provider
    with _lock:
        provider, _provider = _provider, None
    if provider is not None:
        provider.shutdown()  # flushes the batch processor first

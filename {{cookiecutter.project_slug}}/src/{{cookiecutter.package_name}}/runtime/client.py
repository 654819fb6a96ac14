"""Connecting to Temporal: Temporal's own environment configuration, plus patience.

The address, namespace, API key and TLS files come from `temporalio.envconfig`
(`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS_*`,
`TEMPORAL_PROFILE` and `temporal.toml`), the same as the `temporal` CLI. A worker that
starts before its server (common under Kubernetes or compose) waits with backoff instead
of crash-looping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime

from . import tracing
from .settings import ENV_FILE, RuntimeSettings

DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"
MAX_RETRY_DELAY_SECONDS = 10.0

log = logging.getLogger(__name__)


class TemporalUnreachableError(Exception):
    """The server did not answer within `connect_timeout_seconds`."""


def temporal_connect_config() -> dict[str, Any]:
    """Arguments for `Client.connect` from Temporal's environment configuration.

    `TEMPORAL_*` variables are also read from `.env` (the real environment wins), then the
    profile in `temporal.toml`; with nothing set, a local server at `localhost:7233`.
    """
    from_file = dotenv_values(ENV_FILE) if Path(ENV_FILE).is_file() else {}
    environ = {k: v for k, v in from_file.items() if k.startswith("TEMPORAL_") and v is not None}
    environ.update(os.environ)
    try:
        config = dict(ClientConfig.load_client_connect_config(override_env_vars=environ))
    except Exception as exc:  # the SDK raises plain errors for unreadable files and bad values
        print(f"error: Temporal environment configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    config.setdefault("target_host", DEFAULT_TEMPORAL_ADDRESS)
    return config


async def connect(settings: RuntimeSettings, runtime: Runtime | None = None) -> Client:
    """A connected client, retrying with backoff until `connect_timeout_seconds` pass.

    `runtime` carries the telemetry (the worker's serves Prometheus metrics) and the SDK
    Core's logging; None means the SDK's default runtime, whose Core prints its log lines
    (retries while the server is away) to stdout: the service passes one from `metrics.py`,
    which sends them through Python logging to stderr. With tracing on (tracing.py), the
    client carries the tracing interceptor, and so does every worker built on it.
    """
    config = temporal_connect_config()
    if settings.identity:
        config["identity"] = settings.identity
    address = config["target_host"]
    interceptors = tracing.interceptors(settings)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.connect_timeout_seconds
    delay = 0.5
    while True:
        try:
            return await Client.connect(
                **config,
                data_converter=pydantic_data_converter,
                runtime=runtime,
                interceptors=interceptors,
            )
        except RuntimeError as exc:  # the SDK reports connection failures as RuntimeError
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TemporalUnreachableError(
                    f"Temporal at {address} not reachable after "
                    f"{settings.connect_timeout_seconds:g}s: {exc}"
                ) from None
            wait = min(delay, remaining)
            log.warning("Temporal at %s not reachable (%s); retrying in %.1fs", address, exc, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, MAX_RETRY_DELAY_SECONDS)

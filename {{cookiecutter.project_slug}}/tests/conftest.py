"""Shared fixtures: one real Temporal dev server, HTTP site and Redis per test session.

The helpers live in tests/toolkit/ (docs/testing.md): dev server, worker processes, gates,
history record and replay, process groups. The names other test modules import from here
(`service_env`, `address_of`, `run_process`, `running_worker`, ...) are re-exported. At the
end of the session, any process a test left running fails the run (toolkit/leak_guard.py).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from {{ cookiecutter.package_name }} import (
    SERVICE_NAME,
)
from {{ cookiecutter.package_name }}.app import (
    Settings,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
    open_store,
)

from .toolkit import leak_guard
from .toolkit.devserver import SharedDevServer, connect_to_shared, dev_server
from .toolkit.hostile_site import HostileSite
from .toolkit.http_site import LocalSite
from .toolkit.launcher import attach_launcher, shared_launcher, start_launcher, stop_launcher
from .toolkit.processes import (
    BIN,
    PACKAGE,
    PROJECT,
    TEMPORAL_CLI,
    TEST_NETWORKS,
    address_of,
    free_port,
    run_in_group,
    run_process,
    service_cwd,
    service_env,
)
from .toolkit.redis_server import INSTALL_REDIS_SERVER, NO_REDIS_SERVER, RedisServer
from .toolkit.worker import WorkerProcess, running_worker

_own_groups = leak_guard.OWN_GROUPS  # the name tests/pipeline/test_cli.py adds its groups to

__all__ = [  # what other test modules import from here
    "BIN",
    "PACKAGE",
    "PROJECT",
    "TEMPORAL_CLI",
    "_own_groups",
    "address_of",
    "count_keys",
    "expiries",
    "free_port",
    "make_settings",
    "run_in_group",
    "run_process",
    "running_worker",
    "service_cwd",
    "service_env",
    "worker_log",
]


def pytest_configure(config: pytest.Config) -> None:
    """Load the leak check (a process a test leaves running fails the run). Drop
    OpenTelemetry's variables (`OTEL_*`) from this process's environment: with a developer's
    `OTEL_EXPORTER_OTLP_ENDPOINT`, settings made here would trace the tests to their
    collector (subprocesses get `service_env()`, which drops them as well)."""
    config.pluginmanager.register(leak_guard, leak_guard.__name__)
    for name in [k for k in os.environ if k.startswith("OTEL_")]:
        del os.environ[name]
    # The process the tests' Python subprocesses fork from (toolkit/launcher.py). Under
    # pytest-xdist the controller runs it and the session's dev server, from before its
    # workers start until they have all ended, and every xdist worker uses both: one of each
    # for the session, warming up while the workers start and collect the tests.
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # an xdist worker
        attach_launcher(workerinput["launcher"], leak_guard.OWN_GROUPS)
        return
    start_launcher(PACKAGE, service_env(), leak_guard.OWN_GROUPS)
    if getattr(config.option, "numprocesses", None):  # the xdist controller
        global _shared_server
        _shared_server = SharedDevServer()


_shared_server: SharedDevServer | None = None


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: only called with `-n`
def pytest_configure_node(node: Any) -> None:
    """In the xdist controller: hand each worker the session's launcher and dev server."""
    server = _shared_server
    node.workerinput["launcher"] = shared_launcher()
    node.workerinput["dev_server"] = (
        None if server is None else {"address": server.address, "status": str(server.status)}
    )


@pytest.fixture(scope="session")
async def temporal_env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    """`temporal server start-dev` on a free port on 127.0.0.1, for the whole session (under
    xdist: the controller's, which every xdist worker shares)."""
    shared = getattr(request.config, "workerinput", {}).get("dev_server")
    if shared is not None:
        async with connect_to_shared(shared["address"], Path(shared["status"])) as env:
            yield env
    else:
        async with dev_server() as env:
            yield env


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
def site() -> Iterator[LocalSite]:
    server = LocalSite().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hostile() -> Iterator[HostileSite]:
    """The hostile server (tests/toolkit/hostile_site.py) on 127.0.0.1 and 127.0.0.2."""
    server = HostileSite().start()
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
    """Keys starting with `prefix` in the store at `url`, read directly (SQLite or Redis), as a
    worker with the default key prefix wrote them (`<SERVICE_NAME>:<prefix>...`)."""
    prefix = f"{SERVICE_NAME}:{prefix}"
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            query = "SELECT COUNT(*) FROM kv WHERE substr(key, 1, ?) = ?"
            return int(db.execute(query, (len(prefix), prefix)).fetchone()[0])
    with redis.Redis.from_url(url) as client:
        return sum(1 for _ in client.scan_iter(match=f"{prefix}*", count=1000))


def expiries(url: str) -> dict[str, float | None]:
    """Every key in the store at `url`, read directly, with the seconds until it expires
    (None: never); expired rows that SQLite has not purged yet are left out."""
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            now = time.time()
            rows = db.execute("SELECT key, expires_at FROM kv").fetchall()
            return {
                key: None if at is None else at - now for key, at in rows if at is None or at > now
            }
    with redis.Redis.from_url(url) as client:
        found = {}
        for key in client.scan_iter(count=1000):
            pttl = int(client.pttl(key))
            if pttl != -2:
                found[key.decode()] = None if pttl == -1 else pttl / 1000
        return found


@pytest.fixture
def task_queue() -> str:
    """A fresh task queue per test, so workers of different tests never share work."""
    return f"test-{uuid.uuid4().hex[:8]}"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test: no .env file, the state store in tmp_path, fetches allowed to
    127.0.0.1, then `overrides`."""
    values: dict[str, Any] = {
        "state_store_url": f"sqlite:///{tmp_path / 'state.db'}",
        "fetch_allowed_networks": TEST_NETWORKS,  # the tests' servers, on 127.0.0.1
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def worker_log(worker: WorkerProcess) -> str:
    """Everything `worker` has written to stderr so far (for assertion messages)."""
    return worker.log


T = TypeVar("T")

SLOW_TEST_SECONDS = 5.0
"""What a `slow` test takes when its marker does not say (`@pytest.mark.slow(seconds=15)`)."""


def _seconds(item: pytest.Item) -> float:
    marker = item.get_closest_marker("slow")
    return float(marker.kwargs.get("seconds", SLOW_TEST_SECONDS)) if marker else 0.0


@pytest.hookimpl(trylast=True)  # on the order any other plugin chose
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`), each worker starts with its share of the slow tests
    (`xdist_order`). Every xdist worker collects and sorts alike (the scheduler checks that);
    the controller collects nothing, and without xdist the order is left as it is."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        items[:] = xdist_order(items, int(workerinput["workercount"]), _seconds)


def xdist_order(items: list[T], workers: int, seconds: Callable[[T], float]) -> list[T]:
    """`items` in the order that starts each of `workers` with its share of the slow ones.

    `--dist worksteal` hands worker j the next `len(left) // (workers - j)` tests of the list,
    runs each worker's share from its head, and moves tests from the end of a busy worker's
    share to an idle worker. So the list is cut into those shares and the slow tests
    (`seconds(item) > 0`) go to their heads, longest first, each to the share with the least
    slow work so far: none of them then starts late and ends the run alone.
    """
    slow = sorted((item for item in items if seconds(item)), key=seconds, reverse=True)
    fast = iter([item for item in items if not seconds(item)])
    heads: list[list[T]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for item in slow:
        least = load.index(min(load))
        heads[least].append(item)
        load[least] += seconds(item)
    order: list[T] = []
    for j, head in enumerate(heads):
        share = (len(items) - len(order)) // (workers - j)
        order += head
        order += itertools.islice(fast, max(0, share - len(head)))
    order += fast  # what is left when slow tests overfilled a share
    return order


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line for the Redis tests skipped without `redis-server` (toolkit/redis_server.py)."""
    skipped = terminalreporter.stats.get("skipped", [])
    count = sum(NO_REDIS_SERVER in str(getattr(report, "longrepr", "")) for report in skipped)
    if count:
        terminalreporter.write_line(
            f"{count} Redis state store tests skipped: no redis-server on PATH"
            f" (install it: {INSTALL_REDIS_SERVER}); CI requires them",
            yellow=True,
        )


@pytest.hookimpl(tryfirst=True)  # before the leak check (toolkit/leak_guard.py)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the launcher and the shared dev server, remove the folder service subprocesses
    ran in. In the xdist controller this runs after every worker has ended."""
    stop_launcher()
    if _shared_server is not None:
        _shared_server.stop()
    shutil.rmtree(service_cwd(), ignore_errors=True)

"""A cluster on this machine for the drill and the scale run: a dev server, maybe a
`redis-server`, and worker processes, each in a session (and process group) of its own.

The workers run with a clean environment (no `TEMPORAL_*` or `<PREFIX>_*` variables of the
caller, no `temporal.toml` profile) in an empty folder (no `.env` of the project). Every
process is stopped when `stop()` runs, however the caller ends; their logs are kept in the
work dir (`logs/<name>.log`) and `log_tails()` shows their ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from tests.toolkit.gate import Gate
from tests.toolkit.launcher import STDOUT, ChildProcess, start_process
from tests.toolkit.processes import PACKAGE, PROJECT, TEMPORAL_CLI, free_port
from {{ cookiecutter.package_name }}.runtime.settings import (
    DEFAULT_STATE_STORE_URL,
    ENV_PREFIX,
)

__all__ = ["CPU_PROCESSES", "ENV_PREFIX", "PACKAGE", "Cluster", "Process"]

CPU_PROCESSES = 2  # per worker, whatever the machine's core count
# Guards against a broken drill only: no machine speed makes a check pass or fail by them.
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 30
LOG_TAIL_LINES = 15
# The caller's environment the workers keep: where programs are, the locale, and Python's
# own settings (`PYTHON*`: the same interpreter as the caller's, so that in a test the
# workers can fork from the test launcher, which has the same; warnings filters excepted).
KEPT_VARIABLES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")


def _kept(name: str) -> bool:
    return name in KEPT_VARIABLES or (name.startswith("PYTHON") and name != "PYTHONWARNINGS")


@dataclass
class Process:
    """A process the cluster started, leading a session (and process group) of its own."""

    name: str
    process: ChildProcess
    log: Path  # its stdout and stderr
    gate: Gate | None = None
    worker: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def identity(self) -> str:
        """A worker's Temporal identity (its name)."""
        return self.name

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def signal_group(self, sig: int) -> None:
        """`sig` to the whole group: the worker and its pool children (the leader may be
        gone already while children it left behind are still in the group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


class Cluster:
    """The dev server, Redis and worker processes of one drill, each in its own session."""

    def __init__(
        self,
        workdir: Path,
        *,
        checkpoint_every: int = 8,
        cpu_processes: int = CPU_PROCESSES,
        server_address: str | None = None,
    ) -> None:
        """`server_address`: a running Temporal server to use (HOST:PORT); None, the
        cluster's own dev server, started by `start_server`."""
        self.workdir = workdir
        self.checkpoint_every = checkpoint_every
        self.cpu_processes = cpu_processes  # per worker
        self.own_server = server_address is None
        self.port = free_port()
        self.address = server_address or f"127.0.0.1:{self.port}"
        self.processes: list[Process] = []
        self.started: dict[str, int] = {}  # workers started, by task queue (their names)
        self.logs = workdir / "logs"
        self.cwd = workdir / "cwd"  # empty: no project's .env for the workers to read
        self.home = workdir / "home"  # empty: no temporal.toml profile either
        for folder in (self.logs, self.cwd, self.home):
            folder.mkdir(parents=True, exist_ok=True)

    async def spawn(
        self,
        name: str,
        *command: str,
        env: dict[str, str] | None = None,
        gate: Gate | None = None,
        worker: bool = False,
    ) -> Process:
        """Start `command` in a session of its own, its output in logs/<name>.log. Python
        (`sys.executable`) forks from the test launcher when the drill runs in a test
        (tests/toolkit/launcher.py), and starts as usual otherwise."""
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            process = await start_process(
                command, env=env, cwd=self.cwd, stdout=out.fileno(), stderr=STDOUT
            )
        started = Process(name, process, log, gate, worker)
        self.processes.append(started)  # stop() stops it from now on, whatever happens
        return started

    async def start_stores(self) -> tuple[str, str]:
        """URLs of two empty state stores (the drill's, the clean run's) of the default kind.

        The project's default backend (`state_store` chosen at generation) is the one drilled:
        a `redis-server` of the drill's own for Redis, files in the work dir for SQLite.
        """
        if not DEFAULT_STATE_STORE_URL.startswith(("redis://", "rediss://")):
            shared, clean = self.workdir / "shared.db", self.workdir / "clean.db"
            return f"sqlite:///{shared}", f"sqlite:///{clean}"
        port = free_port()
        redis = await self.spawn(
            "redis-server", "redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
        )  # fmt: skip
        for _ in range(int(START_TIMEOUT_SECONDS / 0.05)):
            if not redis.running:
                break
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return f"redis://127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/1"
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"redis-server did not start:\n{redis.log_text()}")

    async def start_server(self) -> None:
        """Start the cluster's dev server, or check that the one it was given answers."""
        if not self.own_server:
            try:
                await Client.connect(self.address)
            except RuntimeError as exc:
                raise RuntimeError(f"no Temporal server at {self.address}: {exc}") from None
            return
        server = await self.spawn(
            "temporal-server",
            str(TEMPORAL_CLI), "server", "start-dev", "--headless",
            "--ip", "127.0.0.1", "--port", str(self.port), "--log-level", "error",
            "--http-port", str(free_port()), "--metrics-port", str(free_port()),
            "--db-filename", str(self.workdir / "temporal.db"),
        )  # fmt: skip
        for _ in range(int(START_TIMEOUT_SECONDS / 0.1)):
            if not server.running:
                break
            try:
                await Client.connect(self.address)
                return
            except RuntimeError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the dev server did not start:\n{server.log_text()}")

    def worker_env(self, task_queue: str, store_url: str, **settings: object) -> dict[str, str]:
        """A clean environment: none of the caller's Temporal or service settings, the
        drill's own, then `settings` (e.g. `cpu_processes=1`)."""
        env = {name: value for name, value in os.environ.items() if _kept(name)}
        values: dict[str, object] = {
            "task_queue": task_queue,
            "state_store_url": store_url,
            "cpu_processes": self.cpu_processes,
            "checkpoint_every_items": self.checkpoint_every,
            "checkpoint_every_seconds": 3600,  # by count only: the first holds checkpoint_every
            "sticky_queue_timeout_seconds": 2,
            "graceful_shutdown_seconds": 60,
            "log_level": "INFO",  # the "worker started" and "draining" lines
            # Several workers on one host: no fixed health or metrics ports to collide on.
            "health_port": 0,
            "metrics_port": 0,
            # The drill's documents come from a site on 127.0.0.1, which fetches refuse
            # unless allowed (runtime/http.py).
            "fetch_allowed_networks": "127.0.0.1/32",
            **settings,
        }
        env.update({ENV_PREFIX + name.upper(): str(value) for name, value in values.items()})
        env.update(
            {
                "HOME": str(self.home),
                "TEMPORAL_CONFIG_FILE": str(self.home / "absent-temporal.toml"),
                "TEMPORAL_ADDRESS": self.address,
                "PYTHONPATH": str(PROJECT),  # `tests.toolkit.gated_worker` from the empty cwd
            }
        )
        return env

    async def start_worker(
        self,
        task_queue: str,
        store_url: str,
        *,
        gated: bool = False,
        activity: str = "",
        service: str | None = None,
        module: str | None = None,
        settings: Mapping[str, object] | None = None,
        **overrides: object,
    ) -> Process:
        """A worker process, once it logged that it polls; `settings`, then `overrides`,
        override the drill's. Its identity is its name, `<task queue>-worker-<n>`.

        `gated`: `python -m tests.toolkit.gated_worker`, its store behind a fresh gate of its own
        (in gates/<name>; a gate closes once per process), which holds it after the first
        checkpoint (of `activity`, if given) until opened. `service` ("module:attribute"):
        that service instead of the app's. `module`: `python -m <module>` (the scale run's
        bare SDK worker, bench/bare.py). Otherwise the service's own `worker` command.
        """
        self.started[task_queue] = self.started.get(task_queue, 0) + 1
        name = f"{task_queue}-worker-{self.started[task_queue]}"
        values = {**(settings or {}), **overrides, "identity": name}
        env = self.worker_env(task_queue, store_url, **values)
        gate = None
        if gated:
            gate = Gate(self.workdir / "gates" / name, activity=activity)
            gate.folder.mkdir(parents=True)  # new: no `open` left from an earlier run
            env.update(gate.env())
        if module:
            command = ["-m", module]
        elif gated or service:
            command = ["-m", "tests.toolkit.gated_worker", *([service] if service else [])]
        else:
            command = ["-m", PACKAGE, "worker"]
        worker = await self.spawn(name, sys.executable, *command, env=env, gate=gate, worker=True)
        for _ in range(int(START_TIMEOUT_SECONDS / 0.05)):
            if "worker started" in worker.log_text():
                return worker
            if not worker.running:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"worker {name} did not start:\n{worker.log_text()}")

    async def stop_process(self, process: Process) -> int:
        """SIGTERM its group, wait, SIGKILL the group if need be; its exit code."""
        if process.running:
            process.signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.process.wait(), STOP_TIMEOUT_SECONDS)
        process.signal_group(signal.SIGKILL)  # the rest of the group, or all of it
        return await process.process.wait()

    async def stop(self) -> None:
        """Stop everything, workers first; SIGKILL whatever is left, even if cancelled."""
        try:
            workers = [p for p in self.processes if p.worker]
            others = [p for p in self.processes if not p.worker]
            await asyncio.gather(*(self.stop_process(p) for p in workers))
            await asyncio.gather(*(self.stop_process(p) for p in reversed(others)))
        finally:
            for process in self.processes:
                process.signal_group(signal.SIGKILL)

    def log_tails(self) -> list[str]:
        lines = []
        for process in self.processes:
            tail = process.log_text().splitlines()[-LOG_TAIL_LINES:]
            lines.append(f"--- {process.name} (pid {process.pid}), the end of its log:")
            lines += [f"    {line}" for line in tail] or ["    (nothing)"]
        return lines

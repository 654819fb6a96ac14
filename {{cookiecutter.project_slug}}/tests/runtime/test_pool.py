"""The CPU pool: real child processes that ignore Ctrl-C and are replaced when one dies."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from {{ cookiecutter.package_name }}.runtime import pool as pool_module
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)

from ..conftest import PACKAGE, PROJECT
from .pool_work import record_start_mask, sleep_then_pid, start_mask


def test_children_start_with_ctrl_c_and_sigterm_blocked() -> None:
    """A child takes seconds to import before its initializer can ignore the signals; a
    Ctrl-C in that window used to kill it and break the pool (seen as a failed activity
    when a worker was stopped just as its pool grew). Started with both blocked, it cannot
    die of one; and the worker's own mask is as before."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn, initializer=record_start_mask) as executor:
        blocked = pool_module._submit(executor, start_mask).result(timeout=120)
    assert {int(signal.SIGINT), int(signal.SIGTERM)} <= set(blocked)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


async def test_children_unblock_the_signals_they_ignore() -> None:
    """After `_ignore_signals`, nothing stays blocked: the child's mask is its parent's."""
    with CpuPool(1) as pool:
        mask = await pool.run(signal.pthread_sigmask, signal.SIG_BLOCK, [])
    assert not {signal.SIGINT, signal.SIGTERM} & set(mask)


async def test_work_runs_in_other_processes() -> None:
    with CpuPool(2) as pool:
        pids = {await pool.run(os.getpid) for _ in range(4)}
    assert os.getpid() not in pids


# The worker's heavy imports, which a pool process has no use for; and an expression that
# lists the top-level packages a process has imported.
HEAVY = frozenset({"temporalio", "aiohttp", "pydantic", "opentelemetry"})
LOADED = "sorted({name.split('.')[0] for name in __import__('sys').modules})"


async def test_a_child_starts_without_the_sdk() -> None:
    """Every child imports pool.py for its initializer: that must not pull in the SDK (or
    the rest of the worker's stack), which tripled a child's start-up CPU when it did. What
    the child imports besides is the function's own module, and the main module of its
    parent: keep both cheap."""
    with CpuPool(1) as pool:
        tops = await pool.run(eval, LOADED)
    assert not HEAVY & set(tops)


@pytest.mark.parametrize("main_module", [f"{PACKAGE}.__main__", "tests.toolkit.gated_worker"])
def test_a_workers_main_module_imports_without_the_sdk(main_module: str) -> None:
    """Spawn imports the parent's main module in every child, before the work: the modules
    a worker runs as (the service's command, the tests' gated worker) keep their imports
    inside functions, or each pool process would pay the worker's whole start-up."""
    probe = f"import importlib; importlib.import_module({main_module!r}); print(*{LOADED})"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert not HEAVY & set(done.stdout.split()), done.stdout


async def test_children_ignore_ctrl_c_and_sigterm() -> None:
    with CpuPool(1) as pool:
        pid = await pool.run(os.getpid)
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        assert await pool.run(sleep_then_pid, 0.2) == pid  # same child, alive and working


async def test_a_killed_child_fails_the_call_retryably_and_the_pool_recovers() -> None:
    with CpuPool(1) as pool:
        pid = await pool.run(os.getpid)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ApplicationError) as failure:
            await pool.run(sleep_then_pid, 0.1)
        assert failure.value.type == "PoolProcessDied"
        assert not failure.value.non_retryable
        assert await pool.run(os.getpid) != pid  # a fresh child


def children() -> set[int]:
    """The live child processes of this test process (zombies count as gone), but for
    multiprocessing's resource tracker, which the first spawned pool starts."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii").rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if (
            fields[0] != "Z"
            and int(fields[1]) == os.getpid()
            and b"resource_tracker" not in command
        ):
            found.add(int(stat.parent.name))
    return found


async def test_when_a_child_dies_its_siblings_are_killed_with_the_broken_pool() -> None:
    """They ignore SIGTERM, the executor's way to stop a broken pool: left alone, they would
    outlive the worker, holding its stdout and stderr open."""
    before = children()
    with CpuPool(2) as pool:
        # Two calls submitted at once while no child is idle: the executor starts two.
        await asyncio.gather(pool.run(sleep_then_pid, 0.1), pool.run(sleep_then_pid, 0.1))
        siblings = children() - before
        assert len(siblings) == 2, siblings
        with pytest.raises(ApplicationError):
            await pool.run(os._exit, 1)
        deadline = time.monotonic() + 60  # a guard for a broken test only
        while siblings & children() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not siblings & children()
        assert await pool.run(os.getpid) not in siblings  # the new pool works


ORPHAN = """
import asyncio, os, sys
from {package}.runtime.pool import CpuPool

async def main() -> None:
    pool = CpuPool(1)
    print(await pool.run(os.getpid), flush=True)
    os._exit(0)  # dies without shutting the pool down, as kill -9 would

asyncio.run(main())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_children_die_with_a_worker_that_dies() -> None:
    """A child ignores SIGTERM; left alone it would outlive its worker and hold its pipes
    open (whoever reads the worker's output would wait forever)."""
    package = CpuPool.__module__.split(".")[0]
    child = subprocess.run(
        [sys.executable, "-c", ORPHAN.format(package=package)],
        capture_output=True,
        text=True,
        timeout=120,  # also the proof: the pipes close, so run() returns
        check=False,
    )
    assert child.returncode == 0, child.stderr
    pid = int(child.stdout)
    deadline = time.monotonic() + 60  # a guard for a broken test only
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()

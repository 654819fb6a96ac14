"""The CPU pool: real child processes that ignore Ctrl-C and are replaced when one dies."""

from __future__ import annotations

import os
import signal
import time

import pytest
from temporalio.exceptions import ApplicationError

from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)


def child_pid() -> int:
    return os.getpid()


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


async def test_work_runs_in_other_processes() -> None:
    with CpuPool(2) as pool:
        pids = {await pool.run(child_pid) for _ in range(4)}
    assert os.getpid() not in pids


async def test_children_ignore_ctrl_c_and_sigterm() -> None:
    with CpuPool(1) as pool:
        pid = await pool.run(child_pid)
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        assert await pool.run(sleep_then_pid, 0.2) == pid  # same child, alive and working


async def test_a_killed_child_fails_the_call_retryably_and_the_pool_recovers() -> None:
    with CpuPool(1) as pool:
        pid = await pool.run(child_pid)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ApplicationError) as failure:
            await pool.run(sleep_then_pid, 0.1)
        assert failure.value.type == "PoolProcessDied"
        assert not failure.value.non_retryable
        assert await pool.run(child_pid) != pid  # a fresh child

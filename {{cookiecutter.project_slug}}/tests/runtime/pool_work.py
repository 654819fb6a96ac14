"""What the runtime's tests run in pool processes, in a module that imports little.

A pool process imports the module of each function it is sent, and a test module would
bring pytest, the SDK and conftest into every child (half a second each). Functions for
`CpuPool.run` live here, on the standard library alone; `os.getpid` and other builtins
need no module at all.
"""

from __future__ import annotations

import os
import signal
import time


def square(n: int) -> int:
    """The probe service's CPU work (tests/runtime/probe.py)."""
    return n * n


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


START_MASK: set[int] = set()  # in a child: the signals it started with blocked


def record_start_mask() -> None:
    """An initializer that runs first thing in the child, as `_ignore_signals` does."""
    START_MASK.update(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))


def start_mask() -> list[int]:
    return sorted(START_MASK)

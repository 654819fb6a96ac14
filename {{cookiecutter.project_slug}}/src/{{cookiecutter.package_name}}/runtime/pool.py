"""A process pool for CPU-bound work, made safe to live inside a Temporal worker.

Threads cannot run pure Python in parallel (the GIL); processes can, one per core. An
async activity hands chunks of work to this pool and awaits them, so the worker's event
loop stays free for heartbeats and other activities. Three traps are handled here:

- Signals: Ctrl-C reaches every process of the terminal's process group. Children that
  obeyed it would die mid-chunk and fail every running activity; ours ignore SIGINT and
  SIGTERM and let the worker decide (it drains, then shuts the pool down). A child is
  started with both signals blocked, so that one arriving while it still imports (before
  it can ignore them) waits, and is then dropped, instead of killing it.
- A dead child (killed, out of memory) breaks a `ProcessPoolExecutor` for good. The pool
  is replaced, and the call fails with a retryable error, so Temporal retries the attempt
  instead of the worker wedging (sdk-python issue 245).
- Children are started with "spawn", not "fork": forking a process that runs the SDK's
  native threads can copy a held lock and deadlock the child.
- Orphans: children that ignore SIGTERM would outlive a worker that died (kill -9, a
  crash, `os._exit`) and hold its stdout and stderr open. On Linux each child asks the
  kernel to SIGKILL it when the thread that started it (the worker's event loop) ends.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Self, TypeVar

T = TypeVar("T")


PR_SET_PDEATHSIG = 1  # prctl(2)
WORKER_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # the worker's to act on, not the children's


def _ignore_signals() -> None:
    """Pool initializer: leave SIGINT and SIGTERM to the worker process; die with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Blocked since the start (`_submit`); one that came meanwhile is dropped, being ignored.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the worker died before the call: nothing will signal us
            os._exit(1)


def _submit(executor: ProcessPoolExecutor, fn: Callable[..., T], *args: object) -> Future[T]:
    """`executor.submit`, with SIGINT and SIGTERM blocked in this thread meanwhile: a child
    the executor starts now inherits the mask across spawn's exec, so a Ctrl-C while it
    imports cannot kill it (and break the pool) before `_ignore_signals` runs. Signals to
    the worker itself are not lost: another thread takes them, or this one right after."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
    try:
        return executor.submit(fn, *args)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class CpuPool:
    """`processes` worker processes, started on first use and replaced if one dies."""

    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes or os.cpu_count() or 1
        self._executor: ProcessPoolExecutor | None = None

    def _current(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_ignore_signals,
            )
        return self._executor

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` in a child process; `fn` and the arguments must pickle."""
        executor = self._current()
        try:
            return await asyncio.wrap_future(_submit(executor, fn, *args))
        except BrokenProcessPool:
            # Imported here, not above: every child imports this module (for the initializer)
            # and stays clear of the SDK, a third of its start-up CPU otherwise.
            from temporalio.exceptions import ApplicationError

            self._discard(executor)
            raise ApplicationError(
                "a pool process died (killed or out of memory); the pool was replaced",
                type="PoolProcessDied",
            ) from None

    async def warm_up(self) -> None:
        """Start every process now, so the first CPU activity does not wait for them."""
        await asyncio.gather(*(self.run(os.getpid) for _ in range(self.processes)))

    def _discard(self, broken: ProcessPoolExecutor) -> None:
        if self._executor is broken:
            self._executor = None
        # The executor stops a broken pool's other children with SIGTERM, which they ignore
        # (`_ignore_signals`), then joins them holding its shutdown lock (Python 3.12): kill
        # them first, or `shutdown` below waits forever and they outlive the worker.
        for process in list((getattr(broken, "_processes", None) or {}).values()):
            process.kill()
        broken.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        """Stop the children; queued work is dropped, running chunks finish first."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

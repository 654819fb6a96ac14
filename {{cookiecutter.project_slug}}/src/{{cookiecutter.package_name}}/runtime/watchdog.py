"""Event-loop lag watchdog: says which activity blocked the worker's event loop.

Every async activity, every heartbeat and the worker's own polling share one event loop.
Synchronous code in an async activity (`time.sleep`, `requests`, a CPU loop) stops all
of them: heartbeats stop, and after the heartbeat timeout Temporal retries activities
that were doing nothing wrong. This is the most common production pain with Python
workers, and the hardest to trace from the timeouts alone.

    watchdog = LoopWatchdog(threshold_seconds=1.0)
    worker = Worker(..., interceptors=[watchdog.interceptor])
    async with watchdog:
        await worker.run()

A coroutine on the loop records a tick a few times per threshold; a thread checks the
ticks. When the loop has missed them for longer than the threshold, the thread logs a
WARNING (while the loop is still blocked) naming the activity on the blocked stack
(type, workflow id, activity id) and the line it is blocked at; when the blocking code
is not on the activity's own stack (a task the activity started), it names every
activity running. A second WARNING says how long the block lasted once the loop runs
again. Depends only on the standard library and temporalio.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import Any, Self

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

log = logging.getLogger(__name__)


class RunningActivities(Interceptor):
    """A worker interceptor that keeps track of the activities running right now."""

    def __init__(self) -> None:
        # The frame of each running activity's `execute_activity` call, to its info: the
        # watchdog finds the blocking activity by looking for that frame on the stack.
        self.by_frame: dict[FrameType, activity.Info] = {}

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Track(next, self.by_frame)


class _Track(ActivityInboundInterceptor):
    def __init__(
        self, next: ActivityInboundInterceptor, by_frame: dict[FrameType, activity.Info]
    ) -> None:
        super().__init__(next)
        self.by_frame = by_frame

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        frame = sys._getframe()
        self.by_frame[frame] = activity.info()
        try:
            return await self.next.execute_activity(input)
        finally:
            del self.by_frame[frame]


class LoopWatchdog:
    """Warns when the running event loop misses its ticks for over `threshold_seconds`."""

    def __init__(self, threshold_seconds: float) -> None:
        if threshold_seconds <= 0:
            raise ValueError(f"threshold_seconds must be positive, not {threshold_seconds}")
        self.threshold = threshold_seconds
        self.interval = min(threshold_seconds / 4, 0.25)
        self.interceptor = RunningActivities()
        self._last_tick = time.monotonic()
        self._loop_thread_id = 0
        self._stopped = threading.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None

    async def __aenter__(self) -> Self:
        self._loop_thread_id = threading.get_ident()
        self._last_tick = time.monotonic()
        self._ticker = asyncio.create_task(self._tick())
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopped.set()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._thread is not None:
            self._thread.join()

    async def _tick(self) -> None:
        while True:
            self._last_tick = time.monotonic()
            await asyncio.sleep(self.interval)

    def _watch(self) -> None:
        blocked_since: float | None = None  # the last tick before the block
        while not self._stopped.wait(self.interval):
            last_tick = self._last_tick
            late = time.monotonic() - last_tick - self.interval
            if blocked_since is None and late > self.threshold:
                blocked_since = last_tick
                self._warn()
            elif blocked_since is not None and last_tick != blocked_since:
                log.warning(
                    "event loop ran again after being blocked for %.1fs",
                    last_tick - blocked_since - self.interval,
                )
                blocked_since = None

    def _warn(self) -> None:
        running = dict(self.interceptor.by_frame)  # one atomic copy
        frame = sys._current_frames().get(self._loop_thread_id)
        blocking = _activity_on_stack(frame, running)
        if blocking is not None:
            culprit = f"by activity {_describe(blocking)}"
        elif running:
            culprit = "while these activities ran: " + "; ".join(map(_describe, running.values()))
        else:
            culprit = "with no activity running"
        log.warning(
            "event loop blocked for over %gs %s, at %s: heartbeats and other activities"
            " wait until it runs again; move blocking code to a thread or a process",
            self.threshold,
            culprit,
            _where(frame),
            extra={"temporal_activity": _ids(blocking)} if blocking else None,
        )


def _activity_on_stack(
    frame: FrameType | None, running: dict[FrameType, activity.Info]
) -> activity.Info | None:
    while frame is not None:
        if frame in running:
            return running[frame]
        frame = frame.f_back
    return None


def _where(frame: FrameType | None) -> str:
    if frame is None:
        return "an unknown place"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def _ids(info: activity.Info) -> dict[str, Any]:
    return {
        "activity_type": info.activity_type,
        "activity_id": info.activity_id,
        "attempt": info.attempt,
        "workflow_id": info.workflow_id,
        "workflow_run_id": info.workflow_run_id,
        "workflow_type": info.workflow_type,
    }


def _describe(info: activity.Info) -> str:
    return (
        f"{info.activity_type} (workflow_id={info.workflow_id} activity_id={info.activity_id}"
        f" attempt={info.attempt})"
    )

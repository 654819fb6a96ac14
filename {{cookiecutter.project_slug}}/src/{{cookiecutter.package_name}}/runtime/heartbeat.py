"""Heartbeating from a long async activity, whatever its work is doing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import activity


async def heartbeat_until_cancelled(details: Callable[[], object]) -> None:
    """Heartbeat `details()` about once a second; run it as a task and cancel it at the end.

    Heartbeats tell Temporal the attempt is alive (a silent one is retried elsewhere after
    the heartbeat timeout) and are how a cancellation reaches the activity. The SDK throttles
    what it sends, so calling often is cheap; the details are the last value sent.
    """
    timeout = activity.info().heartbeat_timeout
    interval = min(1.0, timeout.total_seconds() / 4) if timeout else 1.0
    while True:
        activity.heartbeat(details())
        await asyncio.sleep(interval)

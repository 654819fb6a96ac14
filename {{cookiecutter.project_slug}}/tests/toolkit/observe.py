"""What Temporal says about a run: its pending activities and the activities in its history.

A test proves what happened to an activity from the server's record, not from the worker's
log: which attempt finished, which worker ran it, how it ended. Pass the handle of the
workflow that runs the activity (for an activity of a child workflow, the child's handle).

History note: an activity's ActivityTaskStarted event is written when the activity ends,
with the attempt that ended it; attempts that failed or timed out before are not in the
history (their last failure is in `pending_activity` while the activity retries).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

ACTIVITY_ENDINGS = (
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
)


async def poll(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """The first truthy value of `condition()` (a coroutine function or not), polled.

    The timeout only stops a broken test (the AssertionError names `what`).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.05)


async def pending_activity(
    handle: WorkflowHandle[Any, Any], activity_type: str
) -> PendingActivityInfo | None:
    """The pending (scheduled, running or retrying) activity of that type, if any.

    Its `attempt`, `last_worker_identity` (who runs or last ran it), `heartbeat_details`
    and `last_failure` are the server's. None too if the workflow has not started yet.
    """
    try:
        description = await handle.describe()
    except RPCError:  # not started yet (a child workflow is started by its parent)
        return None
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name == activity_type:
            return pending
    return None


async def failed_attempt_message(handle: WorkflowHandle[Any, Any], activity_type: str) -> str:
    """Once an attempt of the activity has failed (it is retrying), its failure message."""
    pending = await pending_activity(handle, activity_type)
    if pending is not None and pending.attempt >= 2:
        return pending.last_failure.message
    return ""


async def activity_events(handle: WorkflowHandle[Any, Any]) -> list[tuple[str, Any]]:
    """(activity type, event) for every activity event of the run's history, in order."""
    types: dict[int, str] = {}
    found: list[tuple[str, Any]] = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            types[event.event_id] = name
            found.append((name, event))
            continue
        attributes = event.WhichOneof("attributes") or ""
        if attributes.startswith("activity_task_"):  # started, completed, failed, ...
            scheduled = getattr(event, attributes).scheduled_event_id
            found.append((types.get(scheduled, ""), event))
    return found


async def activity_outcomes(
    handle: WorkflowHandle[Any, Any], activity_type: str = ""
) -> list[EventType.ValueType]:
    """How each activity of that type (any type if empty) ended so far, in order
    (COMPLETED, FAILED, CANCELED, TIMED_OUT)."""
    return [
        event.event_type
        for name, event in await activity_events(handle)
        if name == (activity_type or name) and event.event_type in ACTIVITY_ENDINGS
    ]


async def finished_attempts(handle: WorkflowHandle[Any, Any], activity_type: str) -> list[int]:
    """For each activity of that type that ended, the attempt that ended it (1: no retry)."""
    return [
        event.activity_task_started_event_attributes.attempt
        for name, event in await activity_events(handle)
        if name == activity_type and event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]


async def identities(handle: WorkflowHandle[Any, Any], activity_type: str = "") -> set[str]:
    """The identities of the workers that ran the finishing attempts (any type if empty)."""
    return {
        event.activity_task_started_event_attributes.identity
        for name, event in await activity_events(handle)
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and (not activity_type or name == activity_type)
    }

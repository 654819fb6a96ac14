"""Start a workflow from the command line, wait for it, print its result.

What every `run` command needs, whatever the workflow: connect (the SDK Core's logs to
stderr, so stdout carries only the result), start on the service's task queue, print the
workflow's id and UI link to stderr, wait, then print the result (JSON unless `show` says
otherwise) and return an exit code: 0 completed, 1 failed or unreachable.

    def run(settings: Settings, args: argparse.Namespace) -> int:
        return start_and_print(settings, InvoiceSync.run, SyncRequest(since=args.since), "sync")
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO, TypeVar

from pydantic import BaseModel
from temporalio.client import WorkflowExecutionDescription, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import TemporalError

from .client import TemporalUnreachableError, connect
from .metrics import default_runtime
from .settings import RuntimeSettings
from .ui import default_ui_url, workflow_link

I = TypeVar("I")  # noqa: E741 (the workflow's input)
R = TypeVar("R")
FAILURE_POLL_SECONDS = 1.0


def read_urls(urls: list[str], urls_file: Path | None) -> list[str]:
    """URLs from the command line, then from a file (one per line, `#` starts a comment)."""
    found = list(urls)
    if urls_file is not None:
        for line in urls_file.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                found.append(line)
    return found


def new_workflow_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def start_and_print(
    settings: RuntimeSettings,
    workflow_run: Callable[[Any, I], Awaitable[R]],
    request: I,
    id_prefix: str,
    *,
    workflow_id: str | None = None,
    show: Callable[[R], str] | None = None,
) -> int:
    """Run `workflow_run(request)` to the end and print its result; the exit code."""
    workflow_id = workflow_id or new_workflow_id(id_prefix)
    try:
        return asyncio.run(_start_and_wait(settings, workflow_run, request, workflow_id, show))
    except TemporalUnreachableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; workflow {workflow_id} goes on running", file=sys.stderr)
        return 130


async def _start_and_wait(
    settings: RuntimeSettings,
    workflow_run: Callable[[Any, I], Awaitable[R]],
    request: I,
    workflow_id: str,
    show: Callable[[R], str] | None,
) -> int:
    client = await connect(settings, default_runtime())
    try:
        handle = await client.start_workflow(
            workflow_run,
            request,
            id=workflow_id,
            task_queue=settings.task_queue,
            execution_timeout=execution_timeout(settings),
        )
    except TemporalError as exc:
        print(f"error: could not start workflow {workflow_id}: {exc}", file=sys.stderr)
        return 1
    print(f"started workflow {workflow_id} on task queue {settings.task_queue}", file=sys.stderr)
    ui = settings.temporal_ui_url or default_ui_url(client.service_client.config.target_host)
    if ui:
        print(f"  {workflow_link(ui, client.namespace, workflow_id)}", file=sys.stderr)
    watcher = asyncio.create_task(report_failures(handle, sys.stderr))
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        print(f"error: workflow {workflow_id} failed: {innermost_cause(exc)}", file=sys.stderr)
        return 1
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    print(show(result) if show is not None else as_json(result))
    return 0


def execution_timeout(settings: RuntimeSettings) -> timedelta:
    """How long a workflow `run` starts may run in all (its retries and continue-as-new
    runs included) before Temporal ends it as timed out."""
    return timedelta(seconds=settings.workflow_execution_timeout_seconds)


def pending_failures(description: WorkflowExecutionDescription) -> list[str]:
    """A line per pending activity whose last attempt failed: what it is retrying, and why."""
    lines = []
    for pending in description.raw_description.pending_activities:
        if pending.HasField("last_failure") and pending.last_failure.message:
            lines.append(
                f"{pending.activity_type.name} is on attempt {pending.attempt};"
                f" the last one failed: {pending.last_failure.message}"
            )
    return lines


async def report_failures(
    handle: WorkflowHandle[Any, Any], out: TextIO, *, poll_seconds: float = FAILURE_POLL_SECONDS
) -> None:
    """While the workflow runs, print each new failure of a pending activity to `out` (a
    workflow waiting on a failing activity would otherwise look stuck). Until cancelled."""
    shown: set[str] = set()
    while True:
        try:
            lines = pending_failures(await handle.describe())
        except TemporalError:
            lines = []  # the server is away for a moment: try again next time
        for line in lines:
            if line not in shown:
                shown.add(line)
                print(f"  {line}", file=out, flush=True)
        await asyncio.sleep(poll_seconds)


def as_json(result: object) -> str:
    """A pydantic result as indented JSON, anything else as `repr`."""
    if isinstance(result, BaseModel):
        return result.model_dump_json(indent=2)
    return repr(result)


def innermost_cause(exc: BaseException) -> str:
    """The innermost cause of a failure chain: the part a person can act on."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"

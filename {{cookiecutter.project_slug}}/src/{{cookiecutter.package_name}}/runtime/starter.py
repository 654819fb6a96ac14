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
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import TemporalError

from .client import TemporalUnreachableError, connect
from .metrics import default_runtime
from .settings import RuntimeSettings
from .ui import default_ui_url, workflow_link

I = TypeVar("I")  # noqa: E741 (the workflow's input)
R = TypeVar("R")


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
            workflow_run, request, id=workflow_id, task_queue=settings.task_queue
        )
    except TemporalError as exc:
        print(f"error: could not start workflow {workflow_id}: {exc}", file=sys.stderr)
        return 1
    print(f"started workflow {workflow_id} on task queue {settings.task_queue}", file=sys.stderr)
    ui = settings.temporal_ui_url or default_ui_url(client.service_client.config.target_host)
    if ui:
        print(f"  {workflow_link(ui, client.namespace, workflow_id)}", file=sys.stderr)
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        print(f"error: workflow {workflow_id} failed: {innermost_cause(exc)}", file=sys.stderr)
        return 1
    print(show(result) if show is not None else as_json(result))
    return 0


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

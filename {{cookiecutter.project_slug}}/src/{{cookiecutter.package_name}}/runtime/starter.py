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


MAX_URLS_FILE_BYTES = 256 * 1024 * 1024
"""A bigger `--urls-file` is refused: far more than a run takes (about 2 million URLs),
and never read into memory whole (think of /dev/zero)."""


class InputError(ValueError):
    """Input that `run` cannot use: one line for stderr, and exit code 2."""


def read_urls(urls: list[str], urls_file: Path | None) -> list[str]:
    """URLs from the command line, then from a file (one per line, `#` starts a comment).

    The file must be UTF-8 text (a byte-order mark is skipped); anything else, or a file
    that cannot be read, raises `InputError` saying why. The URLs themselves are not judged
    here: a bad one is that URL's failure, with its reason, in the result. Lines end at
    `\\n` only, so a stray control character stays in its URL (and is shown escaped).
    """
    found = list(urls)
    if urls_file is None:
        return found
    name = printable(str(urls_file))
    try:
        with urls_file.open("rb") as file:
            data = file.read(MAX_URLS_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"--urls-file {name}: {exc.strerror or exc}") from None
    if len(data) > MAX_URLS_FILE_BYTES:
        raise InputError(f"--urls-file {name}: larger than {MAX_URLS_FILE_BYTES} bytes")
    if b"\0" in data:
        raise InputError(f"--urls-file {name}: not a text file (it holds NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"--urls-file {name}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})"
        ) from None
    for line in text.split("\n"):
        line = line.split("#", 1)[0].strip()
        if line:
            found.append(line)
    return found


def printable(text: str, *, keep_newlines: bool = True) -> str:
    """`text` with every non-printable character (control characters, terminal escapes,
    lone surrogates from undecodable arguments) written as a Python escape (`\\x1b`);
    line breaks are kept unless `keep_newlines` is false (an error's one line). For
    anything from outside that goes to a terminal."""
    lines = text.split("\n") if keep_newlines else [text]
    return "\n".join(
        "".join(ch if ch.isprintable() else _escape(ch) for ch in line) for line in lines
    )


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


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
    stop_watching = asyncio.Event()
    watcher = asyncio.create_task(report_failures(handle, sys.stderr, stop=stop_watching))
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        cause = printable(innermost_cause(exc), keep_newlines=False)  # it may quote an input
        print(f"error: workflow {workflow_id} failed: {cause}", file=sys.stderr)
        return 1
    finally:
        stop_watching.set()  # between two calls: one cut off mid-call logs a server ERROR
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
        message = pending.last_failure.message if pending.HasField("last_failure") else ""
        if message:  # it may quote an input (a URL): escaped, as everything shown from outside
            lines.append(
                f"{pending.activity_type.name} is on attempt {pending.attempt};"
                f" the last one failed: {printable(message, keep_newlines=False)}"
            )
    return lines


async def report_failures(
    handle: WorkflowHandle[Any, Any],
    out: TextIO,
    *,
    stop: asyncio.Event | None = None,
    poll_seconds: float = FAILURE_POLL_SECONDS,
) -> None:
    """While the workflow runs, print each new failure of a pending activity to `out` (a
    workflow waiting on a failing activity would otherwise look stuck). Until `stop` is set,
    which it sees between two calls (a describe cut off mid-call makes the server log an
    ERROR), or until cancelled."""
    stop = stop or asyncio.Event()
    shown: set[str] = set()
    while not stop.is_set():
        try:
            lines = pending_failures(await handle.describe())
        except TemporalError:
            lines = []  # the server is away for a moment: try again next time
        for line in lines:
            if line not in shown:
                shown.add(line)
                print(f"  {line}", file=out, flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_seconds)


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

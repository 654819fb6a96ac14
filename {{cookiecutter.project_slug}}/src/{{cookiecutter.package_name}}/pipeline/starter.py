"""`run`: start the pipeline from the command line and wait for its result.

The URLs are staged in the state store in chunks, one per batch, and the workflow gets
only their key (the claim-check pattern): a file of 100,000 URLs would not fit in one
Temporal payload. The result comes back the same way (see `report.py`). So `run` needs
the state store the workers use, as well as the Temporal server.

Progress comes from the workflow's `progress` query and goes to stderr, so that stdout
carries only the result (one JSON document with `--json`): a bar redrawn in place on a
terminal, a plain line per change otherwise (logs, CI). Logs go to stderr too, the SDK
Core's included (`metrics.default_runtime`: the SDK's default runtime would print them on
stdout, while the server restarts for instance).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import TemporalError

from ..runtime.client import TemporalUnreachableError, connect
from ..runtime.metrics import default_runtime
from ..runtime.store import StateStore, open_store
from . import report
from .models import (
    PIPELINE_DATA_TTL_SECONDS,
    MinHashParams,
    PipelineInput,
    PipelineOptions,
    PipelineResult,
    Progress,
    StagedUrls,
)
from .settings import PipelineSettings
from .workflows import PipelineWorkflow

PROGRESS_POLL_SECONDS = 0.5
PROGRESS_STOP_SECONDS = 5.0
DEV_SERVER_UI_PORT = 8233


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `python -m <package> run`."""
    parser.add_argument("urls", nargs="*", metavar="URL", help="URLs to fetch")
    parser.add_argument("--urls-file", type=Path, help="file with one URL per line")
    parser.add_argument("--workflow-id", help="workflow id (default: pipeline-<random>)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON document")


def main(settings: PipelineSettings, args: argparse.Namespace) -> int:
    """`run`: the exit code is 0 for a result, 1 if the pipeline failed, 2 for bad input."""
    try:
        urls = read_urls(args.urls, args.urls_file)
    except OSError as exc:
        print(f"error: --urls-file: {exc}", file=sys.stderr)
        return 2
    if not urls:
        print("error: no URLs given (pass them as arguments or with --urls-file)", file=sys.stderr)
        return 2
    workflow_id = args.workflow_id or new_workflow_id()
    try:
        return asyncio.run(
            start_and_wait(settings, urls, workflow_id=workflow_id, as_json=args.json)
        )
    except TemporalUnreachableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; workflow {workflow_id} goes on running", file=sys.stderr)
        return 130


def read_urls(urls: list[str], urls_file: Path | None) -> list[str]:
    """URLs from the command line, then from a file (one per line, `#` starts a comment)."""
    found = list(urls)
    if urls_file is not None:
        for line in urls_file.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                found.append(line)
    return found


def new_workflow_id() -> str:
    return f"pipeline-{uuid.uuid4().hex[:12]}"


async def stage_urls(
    store: StateStore, workflow_id: str, urls: Iterable[str], *, chunk_size: int
) -> StagedUrls:
    """Put the URLs (repeats dropped, order kept) in the store, `chunk_size` per key."""
    staged = StagedUrls(prefix=f"input:{workflow_id}:{uuid.uuid4().hex[:8]}", chunks=0, count=0)
    seen: set[str] = set()
    chunk: list[str] = []

    async def flush() -> None:
        await store.put_json(
            staged.key(staged.chunks), chunk, ttl_seconds=PIPELINE_DATA_TTL_SECONDS
        )
        staged.chunks += 1
        chunk.clear()

    for url in urls:
        if url not in seen:
            seen.add(url)
            chunk.append(url)
            staged.count += 1
            if len(chunk) == chunk_size:
                await flush()
    if chunk:
        await flush()
    return staged


async def start_and_wait(
    settings: PipelineSettings, urls: list[str], *, workflow_id: str, as_json: bool
) -> int:
    """Run the pipeline to the end; print its result; return the process exit code."""
    # The SDK Core's log lines to stderr through Python logging: stdout is for the result.
    client = await connect(settings, default_runtime())
    options = PipelineOptions(
        batch_size=settings.batch_size,
        parallel_batches=settings.parallel_batches,
        heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
        minhash=MinHashParams(
            num_perm=settings.minhash_permutations, shingle_size=settings.shingle_size
        ),
        similarity_threshold=settings.similarity_threshold,
    )
    async with open_store(
        settings.state_store_url, password=settings.state_store_password
    ) as store:
        staged = await stage_urls(store, workflow_id, urls, chunk_size=options.batch_size)
        try:
            handle = await client.start_workflow(
                PipelineWorkflow.run,
                PipelineInput(staged=staged, options=options),
                id=workflow_id,
                task_queue=settings.task_queue,
            )
        except TemporalError as exc:
            print(f"error: could not start workflow {workflow_id}: {exc}", file=sys.stderr)
            return 1
        return await _wait_and_print(client, handle, store, settings, as_json=as_json)


async def _wait_and_print(
    client: Client,
    handle: WorkflowHandle[PipelineWorkflow, PipelineResult],
    store: StateStore,
    settings: PipelineSettings,
    *,
    as_json: bool,
) -> int:
    print(f"started workflow {handle.id} on task queue {settings.task_queue}", file=sys.stderr)
    ui = settings.temporal_ui_url or default_ui_url(client.service_client.config.target_host)
    if ui:
        print(f"  {workflow_link(ui, client.namespace, handle.id)}", file=sys.stderr)

    # Without a run id, queries go to the latest run, also after a continue-as-new.
    latest = client.get_workflow_handle_for(PipelineWorkflow.run, handle.id)
    done = asyncio.Event()
    reporter = asyncio.create_task(_report_progress(latest, done, tty=sys.stderr.isatty()))
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        print(f"error: pipeline failed: {_reason(exc)}", file=sys.stderr)
        return 1
    finally:
        # Let a query in flight finish: a query abandoned mid-way makes the worker log a
        # "query task not found" warning when it answers.
        done.set()
        with contextlib.suppress(TimeoutError):  # past the limit, wait_for cancels it
            await asyncio.wait_for(reporter, PROGRESS_STOP_SECONDS)

    try:
        if as_json:
            await report.write_json(store, result, handle.id, sys.stdout)
        else:
            print(await report.summary(store, result, handle.id))
    except report.MissingResultError as exc:
        print(f"error: the result of {handle.id} is incomplete: {exc}", file=sys.stderr)
        return 1
    return 0


def _reason(exc: WorkflowFailureError) -> str:
    """The innermost cause: the part of a failure chain a person can act on."""
    cause: BaseException = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    return f"{type(cause).__name__}: {cause}"


def default_ui_url(address: str) -> str | None:
    """The Temporal UI that usually goes with a server address, if there is an obvious one."""
    host = address.rsplit(":", 1)[0]
    if host in ("localhost", "127.0.0.1"):
        return f"http://{host}:{DEV_SERVER_UI_PORT}"
    if host.endswith(".tmprl.cloud"):
        return "https://cloud.temporal.io"
    return None


def workflow_link(ui_url: str, namespace: str, workflow_id: str) -> str:
    return f"{ui_url.rstrip('/')}/namespaces/{quote(namespace)}/workflows/{quote(workflow_id)}"


def progress_bar(progress: Progress, width: int = 30) -> str:
    """`fetch        [#########.........]  12/40`: the stage, a bar and the counts."""
    share = progress.done / progress.total if progress.total else 1.0
    filled = round(width * min(share, 1.0))
    bar = "#" * filled + "." * (width - filled)
    return f"  {progress.stage:<12} [{bar}] {progress.done:>5}/{progress.total}"


async def _report_progress(
    handle: WorkflowHandle[PipelineWorkflow, PipelineResult], done: asyncio.Event, *, tty: bool
) -> None:
    """Show progress on stderr until `done` is set: redrawn in place on a terminal, a line
    per change otherwise."""
    last: Progress | None = None
    try:
        while not done.is_set():
            try:
                progress = await handle.query(PipelineWorkflow.progress)
            except TemporalError:
                progress = None  # no worker has picked the workflow up yet
            if progress is not None and progress != last:
                if tty:
                    newline = last is not None and last.stage != progress.stage
                    start = "\n" if newline else "\r"
                    print(start + progress_bar(progress), end="", file=sys.stderr)
                else:
                    print(f"  {progress.stage}: {progress.done}/{progress.total}", file=sys.stderr)
                last = progress
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), PROGRESS_POLL_SECONDS)
    finally:
        if tty and last is not None:
            print(file=sys.stderr)  # leave the last bar on its own line

"""Starting the pipeline from the command line and waiting for its result.

Progress comes from the workflow's `progress` query and goes to stderr, so that stdout
carries only the result (one JSON document with `--json`): a bar redrawn in place on a
terminal, a plain line per change otherwise (logs, CI).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import TemporalError

from .client import connect
from .models import MinHashParams, PipelineInput, PipelineOptions, PipelineResult, Progress
from .settings import Settings
from .workflows import PipelineWorkflow

PROGRESS_POLL_SECONDS = 0.5
SUMMARY_ROWS = 10
DEV_SERVER_UI_PORT = 8233


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


async def start_and_wait(
    settings: Settings, urls: list[str], *, workflow_id: str, as_json: bool
) -> int:
    """Run the pipeline to the end; print its result; return the process exit code."""
    client = await connect(settings)
    options = PipelineOptions(
        fetch_batch_size=settings.fetch_batch_size,
        heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
        minhash=MinHashParams(
            num_perm=settings.minhash_permutations, shingle_size=settings.shingle_size
        ),
        similarity_threshold=settings.similarity_threshold,
    )
    try:
        handle = await client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(urls=urls, options=options),
            id=workflow_id,
            task_queue=settings.task_queue,
        )
    except TemporalError as exc:
        print(f"error: could not start workflow {workflow_id}: {exc}", file=sys.stderr)
        return 1
    print(f"started workflow {handle.id} on task queue {settings.task_queue}", file=sys.stderr)
    ui = settings.temporal_ui_url or default_ui_url(client.service_client.config.target_host)
    if ui:
        print(f"  {workflow_link(ui, client.namespace, handle.id)}", file=sys.stderr)

    reporter = asyncio.create_task(_report_progress(handle, tty=sys.stderr.isatty()))
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        print(f"error: pipeline failed: {_reason(exc)}", file=sys.stderr)
        return 1
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)  # let it end its line

    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        print(summary(result, workflow_id=handle.id))
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
    handle: WorkflowHandle[PipelineWorkflow, PipelineResult], *, tty: bool
) -> None:
    """Show progress on stderr: redrawn in place on a terminal, a line per change otherwise."""
    last: Progress | None = None
    try:
        while True:
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
            await asyncio.sleep(PROGRESS_POLL_SECONDS)
    finally:
        if tty and last is not None:
            print(file=sys.stderr)  # leave the last bar on its own line


def summary(result: PipelineResult, *, workflow_id: str) -> str:
    """A few readable lines: counts first, then the failures (the first ten)."""
    stats = result.stats
    lines = [
        f"Workflow {workflow_id}: fetched {stats.fetched} of {stats.urls} URLs "
        f"({stats.bytes:,} bytes, {stats.words:,} words) in {stats.fetch_seconds:.2f}s.",
    ]
    if stats.fingerprint is not None:
        fp = stats.fingerprint
        lines.append(
            f"Fingerprints: {fp.computed} computed, {fp.memoized} memoized, "
            f"{fp.restored} restored from a checkpoint (attempt {fp.attempt})."
        )
    lines.append(f"Near-duplicate groups: {len(result.duplicates)}")
    lines += [f"  {' = '.join(group)}" for group in result.duplicates[:SUMMARY_ROWS]]
    if result.failed:
        lines.append(f"Failed ({stats.failed}):")
        lines += [f"  {f.url}: {f.reason}" for f in result.failed[:SUMMARY_ROWS]]
        if stats.failed > SUMMARY_ROWS:
            lines.append(f"  ... and {stats.failed - SUMMARY_ROWS} more (see --json)")
    return "\n".join(lines)

"""`run`: start `StatsWorkflow` over some URLs, wait, print one line per page.

Exit codes: 0 when the workflow completed (a page that failed to download is a line of
the result, not a failure of the run), 1 when the workflow failed or Temporal cannot be
reached, 2 for bad input. Progress and links go to stderr, the result to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path

from temporalio.client import WorkflowFailureError
from temporalio.exceptions import TemporalError

from ..runtime.client import TemporalUnreachableError, connect
from ..runtime.metrics import default_runtime
from ..runtime.ui import default_ui_url, workflow_link
from .models import StatsRequest, StatsResult
from .settings import MinimalSettings
from .workflows import StatsWorkflow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `python -m <package> run`."""
    parser.add_argument("urls", nargs="*", metavar="URL", help="URLs to download")
    parser.add_argument("--urls-file", type=Path, help="file with one URL per line")
    parser.add_argument("--workflow-id", help="workflow id (default: stats-<random>)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def read_urls(urls: list[str], urls_file: Path | None) -> list[str]:
    """URLs from the command line, then from a file (one per line, `#` starts a comment)."""
    found = list(urls)
    if urls_file is not None:
        for line in urls_file.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                found.append(line)
    return found


def main(settings: MinimalSettings, args: argparse.Namespace) -> int:
    """`run`: the process exit code."""
    try:
        urls = read_urls(args.urls, args.urls_file)
    except OSError as exc:
        print(f"error: --urls-file: {exc}", file=sys.stderr)
        return 2
    if not urls:
        print("error: no URLs given (pass them as arguments or with --urls-file)", file=sys.stderr)
        return 2
    workflow_id = args.workflow_id or f"stats-{uuid.uuid4().hex[:12]}"
    try:
        return asyncio.run(start_and_wait(settings, urls, workflow_id, as_json=args.json))
    except TemporalUnreachableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; workflow {workflow_id} goes on running", file=sys.stderr)
        return 130


async def start_and_wait(
    settings: MinimalSettings, urls: list[str], workflow_id: str, *, as_json: bool
) -> int:
    """Start the workflow, wait for its result and print it."""
    client = await connect(settings, default_runtime())  # SDK Core logs to stderr
    request = StatsRequest(
        urls=urls,
        rounds=settings.stats_rounds,
        heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
    )
    try:
        handle = await client.start_workflow(
            StatsWorkflow.run, request, id=workflow_id, task_queue=settings.task_queue
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
        print(f"error: workflow {workflow_id} failed: {_reason(exc)}", file=sys.stderr)
        return 1
    print(result.model_dump_json(indent=2) if as_json else summary(result))
    return 0


def _reason(exc: BaseException) -> str:
    """The innermost cause: the part of a failure chain a person can act on."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"


def summary(result: StatsResult) -> str:
    """One line per page, then the totals."""
    lines = []
    for page in result.pages:
        if page.stats is None:
            lines.append(f"{page.url}  failed: {page.error}")
            continue
        top = " ".join(f"{word}({count})" for word, count in page.stats.top)
        lines.append(
            f"{page.url}  {page.stats.words} words, {page.stats.unique} distinct; top: {top}"
        )
    failed = sum(page.stats is None for page in result.pages)
    lines.append(f"{len(result.pages)} pages: {len(result.pages) - failed} done, {failed} failed")
    return "\n".join(lines)

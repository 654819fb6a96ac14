"""`run`: start the pipeline from the command line and wait for its result.

The URLs are staged in the state store in chunks, one per batch, and the workflow gets
only their key (the claim-check pattern): a file of 100,000 URLs would not fit in one
Temporal payload. The result comes back the same way (see `report.py`). So `run` needs
the state store the workers use, as well as the Temporal server.

Progress goes to stderr, so that stdout carries only the result (one JSON document with
`--json`): per stage, the URLs or documents done out of the total, as bars redrawn in place
on a terminal, plain lines otherwise (logs, CI). It moves while a batch runs: the pipeline's
`progress` query gives the finished batches' counts and which batches are running, and the
heartbeat details of those batches' activities (read with describe(), which the server
answers without a worker) give how far each has got. Logs go to stderr too, the SDK Core's
included (`metrics.default_runtime`: the SDK's default runtime would print them on stdout,
while the server restarts for instance).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import TemporalError

from ..runtime.client import TemporalUnreachableError, connect
from ..runtime.metrics import default_runtime
from ..runtime.starter import (
    InputError,
    execution_timeout,
    pending_failures,
    printable,
    read_urls,
)
from ..runtime.store import StateStore, StateStoreError
from ..runtime.ui import default_ui_url, workflow_link
from . import report
from .models import (
    PIPELINE_DATA_TTL_SECONDS,
    MinHashParams,
    PipelineInput,
    PipelineOptions,
    PipelineProgress,
    PipelineResult,
    PipelineStats,
    Progress,
    StagedUrls,
)
from .settings import PipelineSettings
from .workflows import PipelineWorkflow, batch_workflow_id

PROGRESS_POLL_SECONDS = 0.5
PROGRESS_STOP_SECONDS = 5.0
DESCRIBES_PER_POLL = 8
"""Running batches described per poll, in turn: a poll costs one query and at most this many
describe calls however many batches run at once (the others keep their last counts)."""
UNITS = {"fetch": "URLs", "fingerprint": "documents", "duplicates": "documents"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `python -m <package> run`."""
    parser.add_argument("urls", nargs="*", metavar="URL", help="URLs to fetch")
    parser.add_argument("--urls-file", type=Path, help="file with one URL per line")
    parser.add_argument("--workflow-id", help="workflow id (default: pipeline-<random>)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON document")


def main(settings: PipelineSettings, args: argparse.Namespace) -> int:
    """`run`: the exit code is 0 for a result, 1 if the pipeline failed, 2 for bad input (a
    URL file that cannot be read or is not text, a state store that cannot be used)."""
    try:
        urls = read_urls(args.urls, args.urls_file)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not urls:
        print("error: no URLs given (pass them as arguments or with --urls-file)", file=sys.stderr)
        return 2
    workflow_id = args.workflow_id or new_workflow_id()
    try:
        return asyncio.run(
            start_and_wait(settings, urls, workflow_id=workflow_id, as_json=args.json)
        )
    except StateStoreError as exc:  # run stages the URLs in the store before starting
        print(f"error: {printable(str(exc), keep_newlines=False)}", file=sys.stderr)
        return 2
    except TemporalUnreachableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; workflow {printable(workflow_id)} goes on running", file=sys.stderr)
        return 130


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
    """Run the pipeline to the end; print its result; return the process exit code.

    The URLs are staged first: a store that cannot be used fails `run` at once (exit 2),
    before it waits on Temporal."""
    options = PipelineOptions(
        batch_size=settings.batch_size,
        parallel_batches=settings.parallel_batches,
        heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
        minhash=MinHashParams(
            num_perm=settings.minhash_permutations, shingle_size=settings.shingle_size
        ),
        similarity_threshold=settings.similarity_threshold,
    )
    async with settings.open_store() as store:
        staged = await stage_urls(store, workflow_id, urls, chunk_size=options.batch_size)
        # The SDK Core's log lines to stderr through Python logging: stdout is for the result.
        client = await connect(settings, default_runtime())
        try:
            handle = await client.start_workflow(
                PipelineWorkflow.run,
                PipelineInput(staged=staged, options=options),
                id=workflow_id,
                task_queue=settings.task_queue,
                execution_timeout=execution_timeout(settings),
            )
        except TemporalError as exc:
            shown = printable(f"{workflow_id}: {exc}")
            print(f"error: could not start workflow {shown}", file=sys.stderr)
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
    shown_id = printable(handle.id)
    print(f"started workflow {shown_id} on task queue {settings.task_queue}", file=sys.stderr)
    ui = settings.temporal_ui_url or default_ui_url(client.service_client.config.target_host)
    if ui:
        print(f"  {printable(workflow_link(ui, client.namespace, handle.id))}", file=sys.stderr)

    display = ProgressDisplay(sys.stderr, tty=sys.stderr.isatty())
    done = asyncio.Event()
    reporter = asyncio.create_task(
        _report_progress(ProgressTracker(client, handle.id), display, done)
    )
    result: PipelineResult | None = None
    failure = ""
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        failure = _reason(exc)
    finally:
        # Let a query in flight finish: a query abandoned mid-way makes the worker log a
        # "query task not found" warning when it answers.
        done.set()
        with contextlib.suppress(TimeoutError):  # past the limit, wait_for cancels it
            await asyncio.wait_for(reporter, PROGRESS_STOP_SECONDS)
        if result is not None:
            display.show(final_stages(result.stats))
        display.close()
    if result is None:
        print(f"error: pipeline failed: {printable(failure)}", file=sys.stderr)
        return 1

    try:
        if as_json:
            await report.write_json(store, result, handle.id, sys.stdout)
        else:
            print(printable(await report.summary(store, result, handle.id)))
    except report.MissingResultError as exc:
        shown = printable(f"{handle.id} is incomplete: {exc}")
        print(f"error: the result of {shown}", file=sys.stderr)
        return 1
    return 0


def _reason(exc: WorkflowFailureError) -> str:
    """The innermost cause: the part of a failure chain a person can act on."""
    cause: BaseException = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    return f"{type(cause).__name__}: {cause}"


def progress_bar(progress: Progress, width: int = 30) -> str:
    """`fetch        [#########.........]    12/40 URLs`: the stage, a bar and the counts."""
    share = progress.done / progress.total if progress.total else 1.0
    filled = round(width * min(share, 1.0))
    bar = "#" * filled + "." * (width - filled)
    unit = UNITS.get(progress.stage, "")
    return f"  {progress.stage:<12} [{bar}] {progress.done:>5}/{progress.total} {unit}".rstrip()


@dataclass
class BatchProgress:
    """How far one running batch has got, as its activities' heartbeats last said."""

    urls: int
    """The batch's URLs."""
    fetched: int = 0
    """URLs whose fetch is over (a document or a failure)."""
    documents: int | None = None
    """Documents the fetch got, once the fingerprint activity has said."""
    fingerprinted: int = 0


class ProgressTracker:
    """The progress of each stage of a pipeline run, while it runs.

    The pipeline's `progress` query counts only finished batches. Within a running batch,
    its fetch and fingerprint activities heartbeat how far they are; describe() of the
    batch's workflow shows those details (`pending_activities`), and the server answers it
    alone. A poll describes at most DESCRIBES_PER_POLL running batches, taking them in turn.
    """

    def __init__(self, client: Client, workflow_id: str) -> None:
        self._client = client
        self._workflow_id = workflow_id
        # Without a run id, queries go to the latest run, also after a continue-as-new.
        self._handle = client.get_workflow_handle_for(PipelineWorkflow.run, workflow_id)
        self._batches: dict[int, BatchProgress] = {}
        self._turn = 0
        self._failures: list[str] = []
        self._seen_failures: set[str] = set()

    def take_failures(self) -> list[str]:
        """Failures of pending activities seen since the last call, each once: why a stage
        that does not move is retrying (the activity's last failure, from describe())."""
        taken, self._failures = self._failures, []
        return taken

    def _note_failures(self, where: str, description: WorkflowExecutionDescription) -> None:
        for line in pending_failures(description):
            if line not in self._seen_failures:
                self._seen_failures.add(line)
                self._failures.append(f"{where}: {line}")

    async def poll(self) -> list[Progress] | None:
        """The stages started so far with their counts; None if nothing answered yet."""
        try:
            pipeline = await self._handle.query(PipelineWorkflow.progress)
        except TemporalError:
            return None  # no worker has picked the workflow up yet, or the server is away
        if pipeline.stage == "batches":
            await self._read_batches(pipeline)
        elif pipeline.stage != "done":  # stage 3 runs in the pipeline workflow itself
            with contextlib.suppress(TemporalError):
                self._note_failures("pipeline", await self._handle.describe())
        return stages(pipeline, self._batches)

    async def _read_batches(self, pipeline: PipelineProgress) -> None:
        # The finished batches' counts are in the query's answer: forget their heartbeats.
        self._batches = {
            index: self._batches.get(index) or BatchProgress(urls=batch_urls(pipeline, index))
            for index in pipeline.running
        }
        chosen, self._turn = in_turn(pipeline.running, self._turn, DESCRIBES_PER_POLL)
        await asyncio.gather(*(self._read_batch(index) for index in chosen))

    async def _read_batch(self, index: int) -> None:
        batch = self._batches[index]
        handle = self._client.get_workflow_handle(batch_workflow_id(self._workflow_id, index))
        try:
            description = await handle.describe()
        except TemporalError:
            return  # the batch has not started yet, or the server is away: keep what we had
        self._note_failures(f"batch {index}", description)
        for pending in description.raw_description.pending_activities:
            details = await self._client.data_converter.decode(pending.heartbeat_details.payloads)
            done, total = _counts(details[0] if details else None)
            # max(): a retried attempt starts again from 0; what is shown never goes back.
            if pending.activity_type.name == "fetch_documents":
                batch.fetched = max(batch.fetched, done)
            elif pending.activity_type.name == "fingerprint_documents":
                batch.fetched = batch.urls
                if total is not None:
                    batch.documents = total
                batch.fingerprinted = max(batch.fingerprinted, done)


def in_turn(running: list[int], turn: int, limit: int) -> tuple[list[int], int]:
    """At most `limit` of `running`, starting at position `turn` and wrapping around; and the
    position to start at next time. Every running batch gets its turn."""
    if len(running) <= limit:
        return running, 0
    start = turn % len(running)
    return (running[start:] + running[:start])[:limit], start + limit


def _counts(details: Any) -> tuple[int, int | None]:
    """(done, total) from an activity's heartbeat details: the fetch sends its count done,
    the fingerprint `{"done": d, "total": t}`."""
    if isinstance(details, int):
        return details, None
    if isinstance(details, dict):
        done, total = details.get("done"), details.get("total")
        return (
            done if isinstance(done, int) else 0,
            total if isinstance(total, int) else None,
        )
    return 0, None


def batch_urls(pipeline: PipelineProgress, index: int) -> int:
    """How many URLs batch `index` has: `batch_size`, or what is left for the last one."""
    return max(0, min(pipeline.batch_size, pipeline.total - index * pipeline.batch_size))


def stages(pipeline: PipelineProgress, batches: dict[int, BatchProgress]) -> list[Progress]:
    """The stages started so far: fetch in URLs; fingerprint and duplicates in documents,
    out of the URLs not known to have failed (the total shrinks as failures are known)."""
    if pipeline.stage == "starting":
        return []
    if pipeline.stage != "batches":
        urls, documents = pipeline.fetched + pipeline.failed, pipeline.fetched
        done = documents if pipeline.stage == "done" else 0
        return [
            Progress(stage="fetch", done=urls, total=urls),
            Progress(stage="fingerprint", done=documents, total=documents),
            Progress(stage="duplicates", done=done, total=documents),
        ]
    running = batches.values()
    failed = pipeline.failed + sum(b.urls - b.documents for b in running if b.documents is not None)
    documents = pipeline.total - failed
    shown = [
        Progress(
            stage="fetch",
            done=pipeline.done + sum(b.fetched for b in running),
            total=pipeline.total,
        )
    ]
    if pipeline.done or any(b.fetched == b.urls for b in running):
        fingerprinted = pipeline.fetched + sum(b.fingerprinted for b in running)
        shown.append(Progress(stage="fingerprint", done=fingerprinted, total=documents))
    return shown


def final_stages(stats: PipelineStats) -> list[Progress]:
    """Every stage done, from the result: what a run that ended between two polls shows."""
    return [
        Progress(stage="fetch", done=stats.urls, total=stats.urls),
        Progress(stage="fingerprint", done=stats.fetched, total=stats.fetched),
        Progress(stage="duplicates", done=stats.fetched, total=stats.fetched),
    ]


class ProgressDisplay:
    """Shows the stages on `out`: on a terminal, a bar per stage, redrawn in place; otherwise
    a plain line (`  fetch: 12/40 URLs`) when a stage starts, ends, or passes another whole
    percent, so that a log gets at most about a hundred lines a stage however long the run.
    What is shown never goes back (a retried activity starts again from 0)."""

    def __init__(self, out: TextIO, *, tty: bool) -> None:
        self._out = out
        self._tty = tty
        self._shown: dict[str, Progress] = {}
        self._printed: dict[str, Progress] = {}
        self._lines = 0
        self._drawn = ""

    def show(self, stages: list[Progress]) -> None:
        now = [self._forward(progress) for progress in stages]
        if self._tty:
            self._draw(now)
        else:
            for progress in now:
                if self._worth_a_line(self._printed.get(progress.stage), progress):
                    unit = UNITS.get(progress.stage, "")
                    line = f"  {progress.stage}: {progress.done}/{progress.total} {unit}"
                    print(line.rstrip(), file=self._out, flush=True)
                    self._printed[progress.stage] = progress

    def note(self, line: str) -> None:
        """A line of its own (e.g. a retried activity's failure), above the bars on a
        terminal: they are drawn again below it on the next `show`."""
        if self._tty and self._lines:
            up = f"\x1b[{self._lines - 1}A" if self._lines > 1 else ""
            self._out.write("\r" + up + "\x1b[J")  # back to the first bar; erase the bars
            self._lines, self._drawn = 0, ""
        print(f"  {line}", file=self._out, flush=True)

    def close(self) -> None:
        if self._tty and self._lines:
            print(file=self._out, flush=True)  # leave the last bars on their own lines
            self._lines, self._drawn = 0, ""

    def _forward(self, progress: Progress) -> Progress:
        last = self._shown.get(progress.stage)
        if last is not None and last.done > progress.done:
            progress = Progress(stage=progress.stage, done=last.done, total=progress.total)
        if progress.total < progress.done:
            progress = Progress(stage=progress.stage, done=progress.done, total=progress.done)
        self._shown[progress.stage] = progress
        return progress

    @staticmethod
    def _worth_a_line(last: Progress | None, now: Progress) -> bool:
        if last is None:
            return True
        if now.done == last.done:  # only the total changed: say so if that ends the stage
            return now.done >= now.total and last.done < last.total
        if now.done >= now.total:
            return True
        return 100 * now.done // max(now.total, 1) > 100 * last.done // max(last.total, 1)

    def _draw(self, stages: list[Progress]) -> None:
        """Write the bars over the last ones: back to the first line's start (carriage
        return, cursor up), each bar then erase-to-end-of-line."""
        text = "\n".join(progress_bar(progress) + "\x1b[K" for progress in stages)
        if text == self._drawn:
            return
        up = f"\x1b[{self._lines - 1}A" if self._lines > 1 else ""
        self._out.write(("\r" + up if self._lines else "") + text)
        self._out.flush()
        self._lines, self._drawn = len(stages), text


async def _report_progress(
    tracker: ProgressTracker, display: ProgressDisplay, done: asyncio.Event
) -> None:
    """Poll and show progress until `done` is set."""
    while not done.is_set():
        shown = await tracker.poll()
        for line in tracker.take_failures():
            display.note(line)
        if shown:
            display.show(shown)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), PROGRESS_POLL_SECONDS)

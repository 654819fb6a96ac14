"""The HA drill: run the pipeline on three workers, kill one mid-stage, check nothing is lost.

What it does, all on this machine:

1. starts the embedded Temporal dev server, a site serving a generated corpus, and a
   clean reference run (one worker, its own empty state store);
2. starts three workers sharing one state store and runs the same pipeline;
3. once the CPU stage has saved a checkpoint, SIGKILLs the process group of the worker
   holding it, as when a pod is deleted or a node dies;
4. reports: completed or not, result identical to the clean run, seconds until the
   retry started, signatures finished before the kill and how many were redone;
5. replaces the workers (three new ones), runs a second pipeline and SIGTERMs the worker
   holding its CPU stage mid-way (a rolling update): reports that the worker drained
   (exit 0) with no failed activity.

The moments are made certain with the test toolkit's gate (tests/toolkit/gate.py), not caught by
polling: each worker of the two drilled runs is `python -m tests.toolkit.gated_worker`, the
service's own worker with its state store behind a gate of its own. A gate closes after
the first checkpoint its worker saves and then holds every store call of that worker, so
the worker whose gate shows `held` is certainly the one running the CPU stage, mid-way,
with a checkpoint saved, however fast or slow the machine. The drill kills or SIGTERMs
that worker, then opens the gates. (A gate closes once per process: the SIGTERM phase
uses new workers.)

The workers run with a clean environment (no `TEMPORAL_*` or `<PREFIX>_*` variables of
the caller, no `temporal.toml` profile) in an empty folder (no `.env` of the project),
each in a session of its own; every process the drill starts is stopped when it ends,
however it ends. Their logs are kept in the work dir and shown when a check fails.

`make drill` runs it (drill/__main__.py); tests/test_drill.py runs a smaller one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from tests.toolkit.gate import Gate
from tests.toolkit.http_site import LocalSite  # serves the generated corpus
from {{ cookiecutter.package_name }}.pipeline.activities.fingerprint import (
    FingerprintState,
    signature_memo_key,
)
from {{ cookiecutter.package_name }}.pipeline.models import (
    MinHashParams,
    PipelineInput,
    PipelineOptions,
    PipelineResult,
)
from {{ cookiecutter.package_name }}.pipeline.report import (
    PipelineReport,
    read_report,
)
from {{ cookiecutter.package_name }}.pipeline.workflows import (
    PipelineWorkflow,
    batch_workflow_id,
)
from {{ cookiecutter.package_name }}.runtime import (
    devstack,
)
from {{ cookiecutter.package_name }}.runtime.checkpoint import (
    Checkpoint,
)
from {{ cookiecutter.package_name }}.runtime.memo import (
    Memo,
)
from {{ cookiecutter.package_name }}.runtime.settings import (
    DEFAULT_STATE_STORE_URL,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    open_store,
)

PACKAGE = devstack.PACKAGE
ENV_PREFIX = PACKAGE.upper() + "_"
PROJECT = Path(__file__).resolve().parent.parent  # on the workers' PYTHONPATH (tests.*)
WORKERS = 3
CPU_PROCESSES = 2  # per worker, whatever the machine's core count
CHECKPOINT_EVERY = 8
RESULT_TIMEOUT_SECONDS = 180
# Guards against a broken drill only: no machine speed makes a check pass or fail by them.
START_TIMEOUT_SECONDS = 60
HELD_TIMEOUT_SECONDS = 180
STOP_TIMEOUT_SECONDS = 30
LOG_TIMEOUT_SECONDS = 60
LOG_TAIL_LINES = 15
# The caller's environment the workers keep: where programs are, and the locale.
KEPT_VARIABLES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")


@dataclass
class Report:
    """What the drill saw; `passed` says whether every check held."""

    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, text: str) -> None:
        self.lines.append(f"  [{'ok' if ok else 'FAILED'}] {text}")
        if not ok:
            self.failures.append(text)

    def note(self, text: str) -> None:
        self.lines.append(text)

    @property
    def passed(self) -> bool:
        return not self.failures


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """A process the drill started, leading a session (and process group) of its own."""

    name: str
    process: asyncio.subprocess.Process
    log: Path  # its stdout and stderr
    gate: Gate | None = None
    worker: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def signal_group(self, sig: int) -> None:
        """`sig` to the whole group: the worker and its pool children (the leader may be
        gone already while children it left behind are still in the group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


class Cluster:
    """The dev server, Redis and worker processes of one drill, each in its own session."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.processes: list[Process] = []
        self.started: dict[str, int] = {}  # workers started, by task queue (their names)
        self.logs = workdir / "logs"
        self.cwd = workdir / "cwd"  # empty: no project's .env for the workers to read
        self.home = workdir / "home"  # empty: no temporal.toml profile either
        for folder in (self.logs, self.cwd, self.home):
            folder.mkdir(parents=True, exist_ok=True)

    async def spawn(
        self,
        name: str,
        *command: str,
        env: dict[str, str] | None = None,
        gate: Gate | None = None,
        worker: bool = False,
    ) -> Process:
        """Start `command` in a session of its own, its output in logs/<name>.log."""
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                *command,
                env=env,
                cwd=self.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        started = Process(name, process, log, gate, worker)
        self.processes.append(started)  # stop() stops it from now on, whatever happens
        return started

    async def start_stores(self) -> tuple[str, str]:
        """URLs of two empty state stores (the drill's, the clean run's) of the default kind.

        The project's default backend (`state_store` chosen at generation) is the one drilled:
        a `redis-server` of the drill's own for Redis, files in the work dir for SQLite.
        """
        if not DEFAULT_STATE_STORE_URL.startswith(("redis://", "rediss://")):
            shared, clean = self.workdir / "shared.db", self.workdir / "clean.db"
            return f"sqlite:///{shared}", f"sqlite:///{clean}"
        port = free_port()
        redis = await self.spawn(
            "redis-server", "redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
        )  # fmt: skip
        for _ in range(int(START_TIMEOUT_SECONDS / 0.05)):
            if not redis.running:
                break
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return f"redis://127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/1"
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"redis-server did not start:\n{redis.log_text()}")

    async def start_server(self) -> None:
        server = await self.spawn(
            "temporal-server",
            str(devstack.temporal_cli()), "server", "start-dev", "--headless",
            "--ip", "127.0.0.1", "--port", str(self.port), "--log-level", "error",
            "--db-filename", str(self.workdir / "temporal.db"),
        )  # fmt: skip
        for _ in range(int(START_TIMEOUT_SECONDS / 0.1)):
            if not server.running:
                break
            try:
                await Client.connect(self.address)
                return
            except RuntimeError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the dev server did not start:\n{server.log_text()}")

    def worker_env(self, task_queue: str, store_url: str, **settings: object) -> dict[str, str]:
        """A clean environment: none of the caller's Temporal or service settings, the
        drill's own, then `settings` (e.g. `cpu_processes=1`)."""
        env = {name: os.environ[name] for name in KEPT_VARIABLES if name in os.environ}
        values: dict[str, object] = {
            "task_queue": task_queue,
            "state_store_url": store_url,
            "cpu_processes": CPU_PROCESSES,
            "checkpoint_every_items": CHECKPOINT_EVERY,
            "checkpoint_every_seconds": 3600,  # by count only: the first holds CHECKPOINT_EVERY
            "sticky_queue_timeout_seconds": 2,
            "graceful_shutdown_seconds": 60,
            "log_level": "INFO",  # the "worker started" and "draining" lines
            # Several workers on one host: no fixed health or metrics ports to collide on.
            "health_port": 0,
            "metrics_port": 0,
            **settings,
        }
        env.update({ENV_PREFIX + name.upper(): str(value) for name, value in values.items()})
        env.update(
            {
                "HOME": str(self.home),
                "TEMPORAL_CONFIG_FILE": str(self.home / "absent-temporal.toml"),
                "TEMPORAL_ADDRESS": self.address,
                "PYTHONPATH": str(PROJECT),  # `tests.toolkit.gated_worker` from the empty cwd
            }
        )
        return env

    async def start_worker(
        self, task_queue: str, store_url: str, *, gated: bool = False, **settings: object
    ) -> Process:
        """A worker process, once it logged that it polls; `settings` override the drill's.

        `gated`: `python -m tests.toolkit.gated_worker`, its store behind a fresh gate of its own
        (in gates/<name>; a gate closes once per process), which holds it after its first
        checkpoint until opened. Otherwise the service's own `worker` command.
        """
        self.started[task_queue] = self.started.get(task_queue, 0) + 1
        name = f"{task_queue}-worker-{self.started[task_queue]}"
        env = self.worker_env(task_queue, store_url, **settings)
        gate = None
        if gated:
            gate = Gate(self.workdir / "gates" / name)
            gate.folder.mkdir(parents=True)  # new: no `open` left from an earlier run
            env.update(gate.env())
        command = ["-m", "tests.toolkit.gated_worker"] if gated else ["-m", PACKAGE, "worker"]
        worker = await self.spawn(name, sys.executable, *command, env=env, gate=gate, worker=True)
        for _ in range(int(START_TIMEOUT_SECONDS / 0.05)):
            if "worker started" in worker.log_text():
                return worker
            if not worker.running:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"worker {name} did not start:\n{worker.log_text()}")

    async def stop_process(self, process: Process) -> int:
        """SIGTERM its group, wait, SIGKILL the group if need be; its exit code."""
        if process.running:
            process.signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.process.wait(), STOP_TIMEOUT_SECONDS)
        process.signal_group(signal.SIGKILL)  # the rest of the group, or all of it
        return await process.process.wait()

    async def stop(self) -> None:
        """Stop everything, workers first; SIGKILL whatever is left, even if cancelled."""
        try:
            workers = [p for p in self.processes if p.worker]
            others = [p for p in self.processes if not p.worker]
            await asyncio.gather(*(self.stop_process(p) for p in workers))
            await asyncio.gather(*(self.stop_process(p) for p in reversed(others)))
        finally:
            for process in self.processes:
                process.signal_group(signal.SIGKILL)

    def log_tails(self) -> list[str]:
        lines = []
        for process in self.processes:
            tail = process.log_text().splitlines()[-LOG_TAIL_LINES:]
            lines.append(f"--- {process.name} (pid {process.pid}), the end of its log:")
            lines += [f"    {line}" for line in tail] or ["    (nothing)"]
        return lines


async def run_pipeline(
    client: Client, task_queue: str, urls: list[str], heartbeat_timeout: float
) -> WorkflowHandle[Any, PipelineResult]:
    # One batch (one child workflow) for the whole corpus: the drill follows its CPU activity.
    options = PipelineOptions(heartbeat_timeout_seconds=heartbeat_timeout, batch_size=len(urls))
    return await client.start_workflow(
        PipelineWorkflow.run,
        PipelineInput(urls=urls, options=options),
        id=f"drill-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
    )


def only_batch(handle: WorkflowHandle[Any, Any]) -> WorkflowHandle[Any, Any]:
    return handle._client.get_workflow_handle(batch_workflow_id(handle.id, 0))


async def report_of(handle: WorkflowHandle[Any, PipelineResult], store_url: str) -> PipelineReport:
    """The pipeline's result (waited for at most RESULT_TIMEOUT_SECONDS) with its lists."""
    result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_SECONDS)
    async with open_store(store_url) as store:
        return await read_report(store, result, handle.id)


async def cpu_activity(handle: WorkflowHandle[Any, Any]) -> tuple[int, int, str] | None:
    """(attempt, worker pid, checkpoint key) of the pending CPU activity, from describe."""
    try:
        description = await only_batch(handle).describe()
    except RPCError:  # the batch has not started yet
        return None
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name != "fingerprint_documents":
            continue
        pid = int(pending.last_worker_identity.split("@", 1)[0] or 0)
        # As checkpoint.activity_checkpoint_key makes it inside the activity.
        key = f"checkpoint:{description.id}:{description.run_id}:{pending.activity_id}"
        return pending.attempt, pid, key
    return None


async def checkpointed_signatures(store_url: str, key: str) -> int:
    """How many signatures the checkpoint at `key` holds (0 if there is none)."""
    async with open_store(store_url) as store:
        saved = await Checkpoint(
            store, key, FingerprintState, every_items=1, every_seconds=0
        ).load()
    return 0 if saved is None else len(saved.signatures)


async def wait_for_held(workers: list[Process], handle: WorkflowHandle[Any, Any]) -> Process:
    """The worker whose gate closed: it holds the CPU stage, a checkpoint saved.

    Fails at once if a worker exits or the pipeline ends first; the timeout only guards
    against a broken drill.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HELD_TIMEOUT_SECONDS
    polls = 0
    while True:
        for worker in workers:
            assert worker.gate is not None
            if worker.gate.is_held():
                return worker
            if not worker.running:
                raise RuntimeError(
                    f"worker {worker.name} exited ({worker.process.returncode}) before any "
                    f"gate closed:\n{worker.log_text()}"
                )
        polls += 1
        if polls % 50 == 0:
            status = (await handle.describe()).status
            if status != WorkflowExecutionStatus.RUNNING:
                raise RuntimeError(f"{handle.id} ended ({status}) before any gate closed")
        if loop.time() > deadline:
            raise RuntimeError(f"no worker's gate closed in {HELD_TIMEOUT_SECONDS}s")
        await asyncio.sleep(0.02)


async def wait_for_log(worker: Process, text: str) -> None:
    for _ in range(int(LOG_TIMEOUT_SECONDS / 0.05)):
        if text in worker.log_text():
            return
        if not worker.running:
            break
        await asyncio.sleep(0.05)
    raise RuntimeError(f"worker {worker.name} never logged {text!r}:\n{worker.log_text()}")


async def finished_signatures(store_url: str, result_shas: list[str]) -> int:
    """How many documents already have a memoized signature (finished before the kill)."""
    async with open_store(store_url) as store:
        memo = Memo(store, ttl_seconds=1)
        found = [await memo.get(signature_memo_key(sha, MinHashParams())) for sha in result_shas]
    return sum(value is not None for value in found)


async def start_workers(cluster: Cluster, task_queue: str, store_url: str) -> list[Process]:
    """WORKERS gated workers on `task_queue`, started side by side."""
    try:
        async with asyncio.TaskGroup() as group:
            starting = [
                group.create_task(cluster.start_worker(task_queue, store_url, gated=True))
                for _ in range(WORKERS)
            ]
    except BaseExceptionGroup as errors:  # the first failure says why (the rest are cancelled)
        raise errors.exceptions[0] from None
    return [task.result() for task in starting]


def open_gates(workers: list[Process]) -> None:
    for worker in workers:
        if worker.gate is not None:
            worker.gate.open()


async def drill(
    workdir: Path,
    *,
    documents: int,
    words: int,
    heartbeat_timeout: float = 5.0,
    report: Report | None = None,
) -> Report:
    """Run the drill in `workdir`; `heartbeat_timeout` bounds how soon a retry can start.

    Everything it saw goes to `report` (a new one if None), which it also returns; an error
    on the way is a failed check, followed by the last lines of every process's log. Pass a
    `report` of your own to keep what it saw if the drill is cancelled.
    """
    report = Report() if report is None else report
    cluster = Cluster(workdir)  # nothing started yet
    site = LocalSite().start()
    try:
        await _drill(cluster, site, report, documents, words, heartbeat_timeout)
    except Exception as exc:
        report.check(False, f"the drill stopped: {type(exc).__name__}: {exc}")
    except BaseException:  # cancelled, Ctrl-C: still stop everything and say so
        report.check(False, "the drill was interrupted")
        raise
    finally:
        if not report.passed:  # as the processes were when it failed, before they are stopped
            report.lines += cluster.log_tails()
        try:
            await cluster.stop()
        finally:
            site.stop()
    return report


async def _drill(
    cluster: Cluster,
    site: LocalSite,
    report: Report,
    documents: int,
    words: int,
    heartbeat_timeout: float,
) -> None:
    await cluster.start_server()
    client = await Client.connect(cluster.address, data_converter=pydantic_data_converter)
    corpus = [site.url(f"words/{words}/drill-{i}") for i in range(documents)]

    # The reference: one worker, an empty store of its own, nothing interrupted.
    store_url, clean_url = await cluster.start_stores()
    clean = await cluster.start_worker("drill-clean", clean_url)
    reference = await run_pipeline(client, "drill-clean", corpus, heartbeat_timeout)
    expected = await report_of(reference, clean_url)
    await cluster.stop_process(clean)

    workers = await start_workers(cluster, "drill", store_url)
    report.note(
        f"HA drill: {WORKERS} workers on one task queue, dev server at {cluster.address}, "
        f"{documents} documents, heartbeat timeout {heartbeat_timeout:g}s, "
        f"state store {store_url.split(':', 1)[0]}"
    )

    handle = await run_pipeline(client, "drill", corpus, heartbeat_timeout)
    holder = await wait_for_held(workers, handle)  # mid-stage, a checkpoint saved, held
    seen = await cpu_activity(handle)
    holder.signal_group(signal.SIGKILL)
    killed_at = time.monotonic()
    await holder.process.wait()
    shas = sorted({d.sha256 for d in expected.documents})
    finished = await finished_signatures(store_url, shas)
    checkpointed = 0 if seen is None else await checkpointed_signatures(store_url, seen[2])
    open_gates(workers)  # the retry, wherever it runs, must not be held
    if seen is None or seen[1] != holder.pid:
        report.check(False, f"Temporal saw the CPU stage on {seen and seen[1]}, not {holder.pid}")
    report.note(
        f"kill -9 worker {holder.pid} (process group) holding the CPU stage at {checkpointed}"
        " (its checkpoint saved)"
    )

    retry_after = None
    while retry_after is None and time.monotonic() - killed_at < 120:
        now = await cpu_activity(handle)
        if now is None or (now[0] >= 2 and now[1] not in (0, holder.pid)):
            retry_after = time.monotonic() - killed_at
        await asyncio.sleep(0.1)
    result = await report_of(handle, store_url)
    report.check(True, "the workflow completed")
    same = (result.documents, result.duplicates) == (expected.documents, expected.duplicates)
    report.check(same, "result identical to a clean run")
    report.check(
        retry_after is not None,
        f"retry started {retry_after or 0:.1f}s after the kill (another worker took it)",
    )
    fp = result.stats.fingerprint
    redone = fp.computed - (len(shas) - finished)
    report.check(
        redone <= 0 and fp.restored == checkpointed >= CHECKPOINT_EVERY,
        f"signatures finished before the kill: {finished}; restored from the checkpoint "
        f"{fp.restored}, memoized {fp.memoized}, computed again {max(redone, 0)} "
        f"(attempt {fp.attempt})",
    )

    # A rolling update: new workers replace the old, the one holding the CPU stage of the
    # next run is SIGTERMed mid-way. New processes: a gate closes once per process.
    await asyncio.gather(*(cluster.stop_process(w) for w in workers))
    workers = await start_workers(cluster, "drill-rolling", store_url)
    second = [site.url(f"words/{words}/drill-term-{i}") for i in range(documents)]
    handle = await run_pipeline(client, "drill-rolling", second, heartbeat_timeout)
    target = await wait_for_held(workers, handle)
    assert target.gate is not None
    target.signal_group(signal.SIGTERM)
    await wait_for_log(target, "draining")
    target.gate.open()  # the rest of the stage now runs during the drain
    code = await asyncio.wait_for(target.process.wait(), 90)
    open_gates(workers)
    await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_SECONDS)
    kinds = [e.event_type async for e in only_batch(handle).fetch_history_events()]
    failed = {
        EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    } & set(kinds)
    report.check(
        code == 0 and not failed,
        f"SIGTERM worker {target.pid} mid-stage: exit code {code}, "
        f"{'no failed activity' if not failed else 'an activity failed'}",
    )

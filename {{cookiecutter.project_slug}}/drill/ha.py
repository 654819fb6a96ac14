"""The HA drill: run a sample's workflow on three workers, kill one mid-activity, check
nothing is lost. The same for every sample; what is particular to one is its drill case
(drill/case.py; tests/<sample>/drill_case.py).

What it does, all on this machine:

1. starts the embedded Temporal dev server, an HTTP site (for cases that fetch pages) and a
   clean reference run (one worker, its own empty state store);
2. starts three workers sharing one state store and runs the same work;
3. once the case's activity has saved a checkpoint, SIGKILLs the process group of the
   worker holding it, as when a pod is deleted or a node dies;
4. reports: completed or not, result identical to the clean run, seconds until the retry
   started on another worker, and the case's own checks (what was restored, redone);
5. replaces the workers (three new ones), runs a second time and SIGTERMs the worker
   holding the activity mid-way (a rolling update): reports that the worker drained (exit
   0) with no failed activity.

The moments are made certain with the test toolkit's gate (tests/toolkit/gate.py), not caught
by polling: each worker of the two drilled runs is `python -m tests.toolkit.gated_worker`,
the service's own worker with its state store behind a gate of its own. A gate closes after
the case's activity saved its first checkpoint on that worker and then holds every store
call of that worker, so the worker whose gate shows `held` is certainly the one running the
activity, mid-way, with a checkpoint saved, however fast or slow the machine; Temporal must
agree (the pending activity's last worker identity). The drill kills or SIGTERMs that
worker, then opens the gates. (A gate closes once per process: the SIGTERM phase uses new
workers.)

`make drill` runs it (drill/__main__.py); tests/test_drill.py runs a smaller one.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.toolkit.gate import Holder
from tests.toolkit.http_site import LocalSite
from tests.toolkit.observe import activity_outcomes, pending_activity

from .case import DrillCase, DrillRun, find_case
from .cluster import CPU_PROCESSES, Cluster, Process

WORKERS = 3
CHECKPOINT_EVERY = 8
RESULT_TIMEOUT_SECONDS = 180
# Guards against a broken drill only: no machine speed makes a check pass or fail by them.
HELD_TIMEOUT_SECONDS = 180
RETRY_TIMEOUT_SECONDS = 120
DRAIN_TIMEOUT_SECONDS = 90
LOG_TIMEOUT_SECONDS = 60
FAILED = {EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT}


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


async def wait_for_held(workers: list[Process], handle: WorkflowHandle[Any, Any]) -> Process:
    """The worker whose gate closed: it holds the case's activity, a checkpoint saved.

    Fails at once if a worker exits or the run ends first; the timeout only guards against
    a broken drill.
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


def held_workflow(client: Client, held: Holder) -> WorkflowHandle[Any, Any]:
    """The workflow that runs the held activity (the run itself, or a child of it)."""
    return client.get_workflow_handle(held.workflow_id, run_id=held.workflow_run_id)


async def wait_for_log(worker: Process, text: str) -> None:
    for _ in range(int(LOG_TIMEOUT_SECONDS / 0.05)):
        if text in worker.log_text():
            return
        if not worker.running:
            break
        await asyncio.sleep(0.05)
    raise RuntimeError(f"worker {worker.name} never logged {text!r}:\n{worker.log_text()}")


async def start_workers(
    cluster: Cluster, case: DrillCase[Any], task_queue: str, store_url: str, workers: int
) -> list[Process]:
    """`workers` gated workers on `task_queue`, started side by side."""
    try:
        async with asyncio.TaskGroup() as group:
            starting = [
                group.create_task(
                    cluster.start_worker(
                        task_queue,
                        store_url,
                        gated=True,
                        activity=case.activity,
                        settings=case.worker_settings,
                    )
                )
                for _ in range(workers)
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
    case: DrillCase[Any] | None = None,
    items: int = 48,
    heartbeat_timeout: float = 5.0,
    report: Report | None = None,
    workers: int = WORKERS,
    cpu_processes: int = CPU_PROCESSES,
    server_address: str | None = None,
) -> Report:
    """Run the drill of `case` (default: the project's, `find_case()`) in `workdir` on
    runs of `items` items; `heartbeat_timeout` bounds how soon a retry can start.

    Everything it saw goes to `report` (a new one if None), which it also returns; an error
    on the way is a failed check, followed by the last lines of every process's log. Pass a
    `report` of your own to keep what it saw if the drill is cancelled. `workers` (at least
    two: one is killed, another must take over) and `cpu_processes` (each one's pool) size
    the cluster. `server_address` (HOST:PORT) runs it on that Temporal server instead of a
    dev server of its own (the test suite's; `make dev`'s, to watch it in the UI).
    """
    report = Report() if report is None else report
    if workers < 2:
        raise ValueError(f"the drill needs at least 2 workers, not {workers}")
    cluster = Cluster(  # nothing started yet
        workdir,
        checkpoint_every=CHECKPOINT_EVERY,
        cpu_processes=cpu_processes,
        server_address=server_address,
    )
    site = LocalSite().start()
    try:
        await _drill(cluster, site, report, case or find_case(), items, heartbeat_timeout, workers)
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
    case: DrillCase[Any],
    items: int,
    heartbeat_timeout: float,
    workers_count: int,
) -> None:
    await cluster.start_server()
    client = await Client.connect(cluster.address, data_converter=pydantic_data_converter)
    run = DrillRun(client, site, items, heartbeat_timeout, CHECKPOINT_EVERY, RESULT_TIMEOUT_SECONDS)

    # The reference: one worker, an empty store of its own, nothing interrupted.
    store_url, clean_url = await cluster.start_stores()
    clean = await cluster.start_worker("drill-clean", clean_url, settings=case.worker_settings)
    expected = await case.result(run, await case.start(run, "drill-clean", "drill"), clean_url)
    await cluster.stop_process(clean)

    workers = await start_workers(cluster, case, "drill", store_url, workers_count)
    report.note(
        f"HA drill ({type(case).__name__}): {workers_count} workers on one task queue, "
        f"dev server at {cluster.address}, {items} items, heartbeat timeout "
        f"{heartbeat_timeout:g}s, state store {store_url.split(':', 1)[0]}"
    )

    handle = await case.start(run, "drill", "drill")
    holder = await wait_for_held(workers, handle)  # mid-activity, a checkpoint saved, held
    assert holder.gate is not None
    held = holder.gate.holder()
    activity_workflow = held_workflow(client, held)
    pending = await pending_activity(activity_workflow, case.activity)
    seen = pending.last_worker_identity if pending is not None else None
    holder.signal_group(signal.SIGKILL)
    killed_at = time.monotonic()
    await holder.process.wait()
    at_kill = await case.at_kill(run, store_url, held, expected)
    open_gates(workers)  # the retry, wherever it runs, must not be held
    agree = seen == holder.identity
    report.check(
        agree,
        f"Temporal and the gate agree: {case.activity} ran on {holder.name}"
        if agree
        else f"Temporal saw {case.activity} on {seen}, the gate on {holder.name}",
    )
    report.note(
        f"kill -9 worker {holder.name} (pid {holder.pid}, process group) holding "
        f"{case.activity} (attempt {held.attempt}, a checkpoint saved)"
    )

    retry_after = None
    while retry_after is None and time.monotonic() - killed_at < RETRY_TIMEOUT_SECONDS:
        now = await pending_activity(activity_workflow, case.activity)
        if now is None or (
            now.attempt > held.attempt and now.last_worker_identity not in ("", seen)
        ):
            retry_after = time.monotonic() - killed_at
        await asyncio.sleep(0.1)
    result = await case.result(run, handle, store_url)
    report.check(True, "the workflow completed")
    report.check(case.same(result, expected), "result identical to a clean run")
    report.check(
        retry_after is not None,
        f"retry started {retry_after or 0:.1f}s after the kill (another worker took it)",
    )
    for ok, text in case.checks(run, result, expected, at_kill):
        report.check(ok, text)

    # A rolling update: new workers replace the old, the one holding the activity of the
    # next run is SIGTERMed mid-way. New processes: a gate closes once per process.
    await asyncio.gather(*(cluster.stop_process(w) for w in workers))
    workers = await start_workers(cluster, case, "drill-rolling", store_url, workers_count)
    handle = await case.start(run, "drill-rolling", "drill-term")
    target = await wait_for_held(workers, handle)
    assert target.gate is not None
    activity_workflow = held_workflow(client, target.gate.holder())
    target.signal_group(signal.SIGTERM)
    await wait_for_log(target, "draining")
    target.gate.open()  # the rest of the activity now runs during the drain
    code = await asyncio.wait_for(target.process.wait(), DRAIN_TIMEOUT_SECONDS)
    open_gates(workers)
    await case.result(run, handle, store_url)
    failed = FAILED & set(await activity_outcomes(activity_workflow))
    report.check(
        code == 0 and not failed,
        f"SIGTERM worker {target.name} mid-activity: exit code {code}, "
        f"{'no failed activity' if not failed else 'an activity failed'}",
    )

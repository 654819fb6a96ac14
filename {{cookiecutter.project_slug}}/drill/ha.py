"""The HA drill: run the pipeline on three workers, kill one mid-stage, check nothing is lost.

What it does, all on this machine:

1. starts the embedded Temporal dev server, a site serving a generated corpus, and a
   clean reference run (one worker, its own empty state store);
2. starts three workers sharing one state store and runs the same pipeline;
3. while the CPU stage runs, SIGKILLs the process group of the worker holding the
   activity (found from the activity's last worker identity, `pid@host`), as when a pod
   is deleted or a node dies;
4. reports: completed or not, result identical to the clean run, seconds until the
   retry started, signatures finished before the kill and how many were redone;
5. runs a second pipeline and SIGTERMs the worker holding its CPU activity (a rolling
   update): reports that the worker drained (exit 0) with no failed activity.

`make drill` runs it (drill/__main__.py); tests/test_drill.py runs a smaller one.
"""

from __future__ import annotations

import asyncio
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
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from {{ cookiecutter.package_name }} import (
    devstack,
)
from {{ cookiecutter.package_name }}.activities.fingerprint import (
    signature_memo_key,
)
from {{ cookiecutter.package_name }}.memo import (
    Memo,
)
from {{ cookiecutter.package_name }}.models import (
    MinHashParams,
    PipelineInput,
    PipelineOptions,
    PipelineResult,
)
from {{ cookiecutter.package_name }}.report import (
    PipelineReport,
    read_report,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)
from {{ cookiecutter.package_name }}.store import (
    open_store,
)
from {{ cookiecutter.package_name }}.workflows import (
    PipelineWorkflow,
    batch_workflow_id,
)

PACKAGE = devstack.PACKAGE
ENV_PREFIX = PACKAGE.upper() + "_"
WORKERS = 3
CHECKPOINT_EVERY = 8
RESULT_TIMEOUT_SECONDS = 180


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


class Cluster:
    """The dev server and worker processes of one drill, each worker in its own group."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.server: asyncio.subprocess.Process | None = None
        self.redis: asyncio.subprocess.Process | None = None
        self.workers: list[asyncio.subprocess.Process] = []

    async def start_stores(self) -> tuple[str, str]:
        """URLs of two empty state stores (the drill's, the clean run's) of the default kind.

        The project's default backend (`state_store` chosen at generation) is the one drilled:
        a `redis-server` of the drill's own for Redis, files in the work dir for SQLite.
        """
        if not Settings(_env_file=None).state_store_url.startswith(("redis://", "rediss://")):
            shared, clean = self.workdir / "shared.db", self.workdir / "clean.db"
            return f"sqlite:///{shared}", f"sqlite:///{clean}"
        port = free_port()
        self.redis = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no",
            cwd=self.workdir, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return f"redis://127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/1"
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    async def start_server(self) -> None:
        self.server = await asyncio.create_subprocess_exec(
            str(devstack.temporal_cli()), "server", "start-dev", "--headless",
            "--ip", "127.0.0.1", "--port", str(self.port), "--log-level", "error",
            "--db-filename", str(self.workdir / "temporal.db"),
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(300):
            try:
                await Client.connect(self.address)
                return
            except RuntimeError:
                await asyncio.sleep(0.1)
        raise RuntimeError("the dev server did not start")

    async def start_worker(
        self, task_queue: str, store_url: str, **settings: object
    ) -> asyncio.subprocess.Process:
        """A worker process in its own group; `settings` override the drill's own."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env.update(
            {
                "TEMPORAL_ADDRESS": self.address,
                f"{ENV_PREFIX}TASK_QUEUE": task_queue,
                f"{ENV_PREFIX}STATE_STORE_URL": store_url,
                f"{ENV_PREFIX}CHECKPOINT_EVERY_ITEMS": str(CHECKPOINT_EVERY),
                f"{ENV_PREFIX}STICKY_QUEUE_TIMEOUT_SECONDS": "2",
                f"{ENV_PREFIX}GRACEFUL_SHUTDOWN_SECONDS": "60",
                f"{ENV_PREFIX}LOG_LEVEL": "WARNING",
                # Three workers on one host: no fixed health or metrics ports to collide on.
                f"{ENV_PREFIX}HEALTH_PORT": "0",
                f"{ENV_PREFIX}METRICS_PORT": "0",
            }
        )
        env.update({ENV_PREFIX + name.upper(): str(value) for name, value in settings.items()})
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", PACKAGE, "worker", env=env, start_new_session=True
        )
        self.workers.append(worker)
        return worker

    async def stop(self) -> None:
        for process in [*self.workers, self.server, self.redis]:
            if process is not None and process.returncode is None:
                with_group = process in self.workers
                (os.killpg if with_group else os.kill)(process.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except TimeoutError:
                    process.kill()
                    await process.wait()


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


async def cpu_activity(handle: WorkflowHandle[Any, Any]) -> tuple[int, int, int, str] | None:
    """(done, attempt, worker pid, state) of the running CPU activity, from describe."""
    try:
        description = await only_batch(handle).describe()
    except RPCError:  # the batch has not started yet
        return None
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name != "fingerprint_documents":
            continue
        done = 0
        if pending.heartbeat_details.payloads:
            details = await pydantic_data_converter.decode(pending.heartbeat_details.payloads)
            done = int(details[0]["done"])
        pid = int(pending.last_worker_identity.split("@", 1)[0] or 0)
        return done, pending.attempt, pid, str(pending.state)
    return None


async def wait_for_cpu_progress(handle: WorkflowHandle[Any, Any], at_least: int) -> tuple[int, int]:
    """Poll until the CPU activity has `at_least` signatures; return (done, worker pid)."""
    for _ in range(1200):
        seen = await cpu_activity(handle)
        if seen is not None and seen[0] >= at_least and seen[2]:
            return seen[0], seen[2]
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the CPU stage of {handle.id} never reached {at_least} signatures")


async def finished_signatures(store_url: str, result_shas: list[str]) -> int:
    """How many documents already have a memoized signature (finished before the kill)."""
    async with open_store(store_url) as store:
        memo = Memo(store, ttl_seconds=1)
        found = [await memo.get(signature_memo_key(sha, MinHashParams())) for sha in result_shas]
    return sum(value is not None for value in found)


async def drill(
    workdir: Path, *, documents: int, words: int, heartbeat_timeout: float = 5.0
) -> Report:
    """Run the drill in `workdir`; `heartbeat_timeout` bounds how soon a retry can start."""
    from tests.http_site import LocalSite  # the test site serves the generated corpus

    report = Report()
    site = LocalSite().start()
    cluster = Cluster(workdir)
    try:
        await cluster.start_server()
        client = await Client.connect(cluster.address, data_converter=pydantic_data_converter)
        corpus = [site.url(f"words/{words}/drill-{i}") for i in range(documents)]

        # The reference: one worker, an empty store of its own, nothing interrupted.
        store_url, clean_url = await cluster.start_stores()
        clean = await cluster.start_worker("drill-clean", clean_url)
        reference = await run_pipeline(client, "drill-clean", corpus, heartbeat_timeout)
        expected = await report_of(reference, clean_url)
        os.killpg(clean.pid, signal.SIGTERM)
        await clean.wait()

        workers = [await cluster.start_worker("drill", store_url) for _ in range(WORKERS)]
        report.note(
            f"HA drill: {WORKERS} workers on one task queue, dev server at {cluster.address}, "
            f"{documents} documents, heartbeat timeout {heartbeat_timeout:g}s, "
            f"state store {store_url.split(':', 1)[0]}"
        )

        handle = await run_pipeline(client, "drill", corpus, heartbeat_timeout)
        done, pid = await wait_for_cpu_progress(handle, CHECKPOINT_EVERY)
        os.killpg(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        shas = sorted({d.sha256 for d in expected.documents})
        finished = await finished_signatures(store_url, shas)
        report.note(f"kill -9 worker {pid} (process group) holding the CPU stage at {done}")

        retry_after = None
        while retry_after is None and time.monotonic() - killed_at < 120:
            seen = await cpu_activity(handle)
            if seen is None or (seen[1] >= 2 and seen[2] not in (0, pid)):
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
            redone <= 0 and fp.restored >= CHECKPOINT_EVERY,
            f"signatures finished before the kill: {finished}; restored from the checkpoint "
            f"{fp.restored}, memoized {fp.memoized}, computed again {max(redone, 0)} "
            f"(attempt {fp.attempt})",
        )

        # A rolling update: SIGTERM the worker that holds the next CPU stage.
        survivors = [w for w in workers if w.pid != pid]
        second = [site.url(f"words/{words}/drill-term-{i}") for i in range(documents)]
        handle = await run_pipeline(client, "drill", second, heartbeat_timeout)
        _, holder = await wait_for_cpu_progress(handle, 2)
        target = next((w for w in survivors if w.pid == holder), None)
        if target is None:
            report.check(False, f"the CPU stage ran on worker {holder}, not a surviving one")
        else:
            os.killpg(target.pid, signal.SIGTERM)
            code = await asyncio.wait_for(target.wait(), 90)
            await asyncio.wait_for(handle.result(), 120)
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
    finally:
        await cluster.stop()
        site.stop()
    return report

"""The Prometheus endpoint of a worker process: the SDK's metrics and the service's counters.

The worker runs the test-only probe service (tests/runtime/probe.py); the pipeline's own
counters are checked in tests/pipeline/test_metrics.py.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.client import Client

from {{ cookiecutter.package_name }}.runtime.metrics import (
    PREFIX,
)

from ..toolkit.processes import address_of, service_env
from ..toolkit.worker import WorkerProcess, running_worker
from . import probe


def observed(values: dict[str, float]) -> dict[str, float]:
    """The metrics the test checks: the SDK's own (names as Temporal documents them) and
    the service's (counters never added to are not exported)."""
    sdk = ("temporal_workflow_completed", "temporal_activity_execution_latency_count")
    found = {name: values[name] for name in sdk if name in values}
    found |= {name[len(PREFIX) :]: v for name, v in values.items() if name.startswith(PREFIX)}
    return found


async def metrics_once_counted(
    worker: WorkerProcess, expected: dict[str, float]
) -> dict[str, float]:
    """The worker's metrics once `observed` equals `expected` (or after a 60 s guard).

    The worker may count a task just after reporting it to the server (which lets the
    result out): scrape until the counts are in.
    """
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        values = await worker.metrics()
        if observed(values) == expected or asyncio.get_running_loop().time() > deadline:
            return values
        await asyncio.sleep(0.1)


EXPECTED: dict[str, float] = {
    "temporal_workflow_completed": 2,
    "temporal_activity_execution_latency_count": 2,  # one activity per run
    "memo_misses": 3,  # the first run computes its 3 items
    "memo_hits": 3,  # the second finds them memoized
    "checkpoint_saves": 6,  # a checkpoint after each item
}


async def test_sdk_and_service_metrics_after_two_runs(
    client: Client, tmp_path: Path, task_queue: str
) -> None:
    # A worker process, as in production: its runtime serves /metrics, and it ends with the
    # test (an in-process runtime would serve its port until the end of the session).
    env = service_env(
        address_of(client),
        task_queue=task_queue,
        state_store_url=f"sqlite:///{tmp_path / 'state.db'}",
        cpu_processes=1,
        checkpoint_every_items=1,
    )
    async with running_worker(env, service=probe.SPEC, serve_metrics=True) as worker:
        for _ in range(2):
            await client.execute_workflow(
                probe.ProbeWorkflow.run,
                probe.ProbeInput(items=3),
                id=f"metrics-{uuid.uuid4()}",
                task_queue=task_queue,
            )
        values = await metrics_once_counted(worker, EXPECTED)
    assert values["temporal_request"] > 0, worker.log
    assert observed(values) == EXPECTED, worker.log

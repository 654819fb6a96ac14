"""The Prometheus endpoint, scraped after real pipeline runs: the SDK's metrics and ours."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from asyncio.subprocess import Process
from collections import defaultdict
from pathlib import Path

from temporalio.client import Client

from {{ cookiecutter.package_name }}.pipeline.models import (
    PipelineInput,
)
from {{ cookiecutter.package_name }}.pipeline.workflows import (
    PipelineWorkflow,
)
from {{ cookiecutter.package_name }}.runtime.metrics import (
    PREFIX,
)
from {{ cookiecutter.package_name }}.runtime.settings import (
    ENV_PREFIX,
)

from ..conftest import address_of, free_port, service_env, start_worker, stop_worker, worker_log
from ..toolkit.http_site import LocalSite


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body: bytes = response.read()  # urlopen's result is untyped
    return body.decode()


def totals(exposition: str) -> defaultdict[str, float]:
    """Each metric's value summed over its label sets (Prometheus text format)."""
    values: defaultdict[str, float] = defaultdict(float)
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            values[series.split("{", 1)[0]] += float(value)
    return values


async def start_worker_serving_metrics(env: dict[str, str]) -> tuple[Process, int]:
    """`start_worker` with /metrics on a port that was free a moment ago; the port.

    Another program may take that port first: the worker then stops at once saying the
    port is in use, and another port is tried (nothing here waits for or bets on speed).
    """
    for _ in range(5):
        port = free_port()
        try:
            return await start_worker({**env, f"{ENV_PREFIX}METRICS_PORT": str(port)}), port
        except AssertionError as error:  # start_worker's, with the worker's log
            if "in use" not in str(error):
                raise
    raise AssertionError("five free ports in a row were taken before the worker bound them")


def observed(values: dict[str, float]) -> dict[str, float]:
    """The metrics the test checks: the SDK's own (names as Temporal documents them) and
    the service's (counters never added to are not exported)."""
    sdk = ("temporal_workflow_completed", "temporal_activity_execution_latency_count")
    found = {name: values[name] for name in sdk if name in values}
    found |= {name[len(PREFIX) :]: v for name, v in values.items() if name.startswith(PREFIX)}
    return found


EXPECTED = {
    "temporal_workflow_completed": 4,  # a pipeline and its one batch, twice
    "temporal_activity_execution_latency_count": 6,  # 3 activities per run
    "documents_fetched": 6,
    "documents_failed": 2,
    "signatures_computed": 3,
    "signatures_memoized": 3,
    "memo_hits": 3,
    "memo_misses": 3,
    "checkpoint_saves": 3,
}


async def test_sdk_and_service_metrics_after_two_runs(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    # A worker process, as in production: its runtime serves /metrics, and it ends with the
    # test (an in-process runtime would serve its port until the end of the session).
    env = service_env(
        address_of(client),
        task_queue=task_queue,
        state_store_url=f"sqlite:///{tmp_path / 'state.db'}",
        cpu_chunk_size=1,
        checkpoint_every_items=1,  # a checkpoint after each signature
    )
    urls = [site.url(f"doc/metrics-{name}") for name in ("a", "b", "c")]
    urls.append(site.url("status/404"))
    worker, metrics_port = await start_worker_serving_metrics(env)
    try:
        for _ in range(2):  # the second run finds every signature memoized
            await client.execute_workflow(
                PipelineWorkflow.run,
                PipelineInput(urls=urls),
                id=f"metrics-{uuid.uuid4()}",
                task_queue=task_queue,
            )
        # The worker may count a task just after reporting it to the server (which lets the
        # result out): scrape until the counts are in, with a guard for a broken test.
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            values = totals(await asyncio.to_thread(scrape, metrics_port))
            if observed(values) == EXPECTED or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
        log = worker_log(worker)
    finally:
        await stop_worker(worker)
    assert values["temporal_request"] > 0, log
    assert observed(values) == EXPECTED, log

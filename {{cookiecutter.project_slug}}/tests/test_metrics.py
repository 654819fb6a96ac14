"""The Prometheus endpoint, scraped after real pipeline runs: the SDK's metrics and ours."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from {{ cookiecutter.package_name }}.metrics import (
    PREFIX,
    telemetry_runtime,
)
from {{ cookiecutter.package_name }}.models import (
    PipelineInput,
)
from {{ cookiecutter.package_name }}.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.store import (
    open_store,
)
from {{ cookiecutter.package_name }}.worker import (
    build_worker,
)
from {{ cookiecutter.package_name }}.workflows import (
    PipelineWorkflow,
)

from .conftest import address_of, free_port, make_settings
from .http_site import LocalSite


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


async def test_sdk_and_service_metrics_after_two_runs(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str, pool: CpuPool
) -> None:
    metrics_port = free_port()
    # A client on its own runtime serving /metrics, as the worker process has (the kill -9
    # test in test_resume.py scrapes a worker process).
    metered = await Client.connect(
        address_of(client),
        runtime=telemetry_runtime(metrics_port),
        data_converter=pydantic_data_converter,
    )
    settings = make_settings(
        tmp_path,
        task_queue=task_queue,
        cpu_chunk_size=1,
        checkpoint_every_items=1,  # a checkpoint after each signature
    )
    urls = [site.url(f"doc/metrics-{name}") for name in ("a", "b", "c")]
    urls.append(site.url("status/404"))
    async with (
        open_store(settings.state_store_url) as store,
        build_worker(metered, settings, store, pool),
    ):
        for _ in range(2):  # the second run finds every signature memoized
            await metered.execute_workflow(
                PipelineWorkflow.run,
                PipelineInput(urls=urls),
                id=f"metrics-{uuid.uuid4()}",
                task_queue=task_queue,
            )
    exposition = await asyncio.to_thread(scrape, metrics_port)

    values = totals(exposition)
    # The SDK's own metrics (names as Temporal documents them).
    assert values["temporal_request"] > 0
    assert values["temporal_workflow_completed"] == 4  # a pipeline and its one batch, twice
    assert values["temporal_activity_execution_latency_count"] == 6  # 3 activities per run
    # The service's (counters never added to are not exported).
    service = {name[len(PREFIX) :]: v for name, v in values.items() if name.startswith(PREFIX)}
    assert service == {
        "documents_fetched": 6,
        "documents_failed": 2,
        "signatures_computed": 3,
        "signatures_memoized": 3,
        "memo_hits": 3,
        "memo_misses": 3,
        "checkpoint_saves": 3,
    }

"""The pipeline's own counters on a worker's /metrics, after two real runs.

(The runtime's endpoint itself is tested with the probe service: tests/runtime/test_metrics.py.)
"""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.client import Client

from {{ cookiecutter.package_name }}.pipeline.models import (
    PipelineInput,
)
from {{ cookiecutter.package_name }}.pipeline.workflows import (
    PipelineWorkflow,
)

from ..runtime.test_metrics import metrics_once_counted, observed
from ..toolkit.http_site import LocalSite
from ..toolkit.processes import address_of, service_env
from ..toolkit.worker import running_worker

EXPECTED: dict[str, float] = {
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


async def test_pipeline_metrics_after_two_runs(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    env = service_env(
        address_of(client),
        task_queue=task_queue,
        state_store_url=f"sqlite:///{tmp_path / 'state.db'}",
        cpu_chunk_size=1,
        checkpoint_every_items=1,  # a checkpoint after each signature
    )
    urls = [site.url(f"doc/metrics-{name}") for name in ("a", "b", "c")]
    urls.append(site.url("status/404"))
    async with running_worker(env, serve_metrics=True) as worker:
        for _ in range(2):  # the second run finds every signature memoized
            await client.execute_workflow(
                PipelineWorkflow.run,
                PipelineInput(urls=urls),
                id=f"metrics-{uuid.uuid4()}",
                task_queue=task_queue,
            )
        values = await metrics_once_counted(worker, EXPECTED)
    assert values["temporal_request"] > 0, worker.log
    assert observed(values) == EXPECTED, worker.log

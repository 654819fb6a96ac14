"""Record tests/pipeline/histories/{pipeline,batch}.json: a pipeline run and one of its
batches, on a fresh dev server (tests/toolkit/history.py).

Run it with `make history` (`python -m tests.pipeline.record_history`) after an intended change
to the workflow code.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from {{ cookiecutter.package_name }}.pipeline.models import (
    PipelineInput,
    PipelineOptions,
)
from {{ cookiecutter.package_name }}.pipeline.workflows import (
    PipelineWorkflow,
    batch_workflow_id,
)

from ..toolkit.history import record
from ..toolkit.http_site import LocalSite

HISTORIES = Path(__file__).parent / "histories"


async def main() -> None:
    site = LocalSite().start()

    async def run(client: Client, task_queue: str) -> dict[str, WorkflowHandle[Any, Any]]:
        urls = [site.url("doc/a"), site.url("doc/b"), site.url("status/404"), site.url("doc/c")]
        request = PipelineInput(urls=urls, options=PipelineOptions(batch_size=2))
        handle = await client.start_workflow(
            PipelineWorkflow.run, request, id="recorded-pipeline", task_queue=task_queue
        )
        await handle.result()
        batch = client.get_workflow_handle(batch_workflow_id(handle.id, 0))
        return {"pipeline": handle, "batch": batch}

    try:
        await record(HISTORIES, run)
    finally:
        site.stop()


if __name__ == "__main__":
    asyncio.run(main())

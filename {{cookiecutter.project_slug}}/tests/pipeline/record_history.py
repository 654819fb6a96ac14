"""Record tests/pipeline/histories/{pipeline,batch}.json: a pipeline run and one of its
batches, on a fresh dev server.

Run it with `make history` (`python -m tests.pipeline.record_history`) after an intended change
to the workflow code.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from {{ cookiecutter.package_name }}.app import (
    Settings,
    register,
)
from {{ cookiecutter.package_name }}.pipeline.models import (
    PipelineInput,
    PipelineOptions,
)
from {{ cookiecutter.package_name }}.pipeline.workflows import (
    PipelineWorkflow,
    batch_workflow_id,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    open_store,
)
from {{ cookiecutter.package_name }}.runtime.worker import (
    build_worker,
)

from ..toolkit.http_site import LocalSite

OUT = Path(__file__).parent / "histories"


async def record() -> None:
    site = LocalSite().start()
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        # The SDK waits 5 s for the server by default; a loaded 2-core machine needs more.
        dev_server_startup_timeout=timedelta(seconds=120),
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
    )
    try:
        with tempfile.TemporaryDirectory() as tmp, CpuPool(1) as pool:
            settings = Settings(
                _env_file=None, task_queue="record", state_store_url=f"sqlite:///{tmp}/s.db"
            )
            urls = [site.url("doc/a"), site.url("doc/b"), site.url("status/404"), site.url("doc/c")]
            request = PipelineInput(urls=urls, options=PipelineOptions(batch_size=2))
            async with (
                open_store(settings.state_store_url) as store,
                build_worker(env.client, settings, register(settings, store, pool)),
            ):
                handle = await env.client.start_workflow(
                    PipelineWorkflow.run, request, id="recorded-pipeline", task_queue="record"
                )
                await handle.result()
                histories = {
                    "pipeline": await handle.fetch_history(),
                    "batch": await env.client.get_workflow_handle(
                        batch_workflow_id(handle.id, 0)
                    ).fetch_history(),
                }
        OUT.mkdir(exist_ok=True)
        for name, history in histories.items():
            (OUT / f"{name}.json").write_text(history.to_json(), encoding="utf-8")
            print(f"wrote {OUT / name}.json ({len(history.events)} events)")
    finally:
        await env.shutdown()
        site.stop()


if __name__ == "__main__":
    asyncio.run(record())

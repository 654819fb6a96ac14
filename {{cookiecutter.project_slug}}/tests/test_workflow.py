"""The pipeline workflow end to end, on the real dev server with an in-process worker."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from {{ cookiecutter.package_name }}.models import (
    FailedUrl,
    PipelineInput,
    PipelineOptions,
    Progress,
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

from .conftest import make_settings
from .http_site import LocalSite


async def test_pipeline_fetches_in_batches_and_reports_failures(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str
) -> None:
    one, two, three = (site.url(f"doc/wf-{name}") for name in ("one", "two", "three"))
    missing = site.url("status/404")
    settings = make_settings(tmp_path, task_queue=task_queue)
    request = PipelineInput(
        urls=[one, two, missing, one, three],  # `one` twice: fetched once
        options=PipelineOptions(fetch_batch_size=2),
    )
    async with (
        open_store(settings.state_store_url) as store,
        build_worker(client, settings, store),
    ):
        handle = await client.start_workflow(
            PipelineWorkflow.run, request, id=f"wf-{uuid.uuid4()}", task_queue=task_queue
        )
        result = await handle.result()
        progress = await handle.query(PipelineWorkflow.progress)

    assert [d.url for d in result.documents] == [one, two, three]
    assert result.failed == [FailedUrl(url=missing, reason="HTTP 404 Not Found")]
    stats = result.stats
    assert (stats.urls, stats.fetched, stats.failed, stats.words) == (4, 3, 1, 21)
    assert stats.bytes == sum(d.bytes for d in result.documents)
    assert progress == Progress(stage="done", done=4, total=4)

    history = await handle.fetch_history()
    scheduled = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert len(scheduled) == 2  # 4 URLs in batches of 2


async def test_an_empty_url_list_completes_with_nothing(
    client: Client, tmp_path: Path, task_queue: str
) -> None:
    settings = make_settings(tmp_path, task_queue=task_queue)
    async with (
        open_store(settings.state_store_url) as store,
        build_worker(client, settings, store),
    ):
        result = await client.execute_workflow(
            PipelineWorkflow.run,
            PipelineInput(urls=[]),
            id=f"wf-{uuid.uuid4()}",
            task_queue=task_queue,
        )
    assert (result.documents, result.failed, result.stats.urls) == ([], [], 0)

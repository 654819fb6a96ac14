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

from .conftest import make_settings
from .http_site import LocalSite


async def test_pipeline_fetches_in_batches_and_reports_failures(
    client: Client, site: LocalSite, tmp_path: Path, task_queue: str, pool: CpuPool
) -> None:
    one, two, three = (site.url(f"doc/wf-{name}") for name in ("one", "two", "three"))
    missing = site.url("status/404")
    copy = site.url("copy/wf-one/again")  # same body as `one`
    settings = make_settings(tmp_path, task_queue=task_queue)
    request = PipelineInput(
        urls=[one, two, missing, one, three, copy],  # `one` twice: fetched once
        options=PipelineOptions(fetch_batch_size=2),
    )
    async with (
        open_store(settings.state_store_url) as store,
        build_worker(client, settings, store, pool),
    ):
        handle = await client.start_workflow(
            PipelineWorkflow.run, request, id=f"wf-{uuid.uuid4()}", task_queue=task_queue
        )
        result = await handle.result()
        progress = await handle.query(PipelineWorkflow.progress)

    assert [d.url for d in result.documents] == [one, two, three, copy]
    assert result.duplicates == [sorted([one, copy])]
    assert result.failed == [FailedUrl(url=missing, reason="HTTP 404 Not Found")]
    stats = result.stats
    assert (stats.urls, stats.fetched, stats.failed, stats.words) == (5, 4, 1, 28)
    assert stats.bytes == sum(d.bytes for d in result.documents)
    assert progress == Progress(stage="done", done=5, total=5)
    # Three distinct bodies: `one` and its copy share one signature, computed once.
    assert stats.fingerprint is not None
    assert (stats.fingerprint.computed, stats.fingerprint.restored) == (3, 0)

    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    # 5 URLs in fetch batches of 2, then one activity for each later stage.
    assert scheduled == ["fetch_documents"] * 3 + ["fingerprint_documents", "group_near_duplicates"]


async def test_an_empty_url_list_completes_with_nothing(
    client: Client, tmp_path: Path, task_queue: str, pool: CpuPool
) -> None:
    settings = make_settings(tmp_path, task_queue=task_queue)
    async with (
        open_store(settings.state_store_url) as store,
        build_worker(client, settings, store, pool),
    ):
        result = await client.execute_workflow(
            PipelineWorkflow.run,
            PipelineInput(urls=[]),
            id=f"wf-{uuid.uuid4()}",
            task_queue=task_queue,
        )
    assert (result.documents, result.failed, result.stats.urls) == ([], [], 0)

"""The minimal sample's drill case (drill/case.py): `make drill` on `StatsWorkflow`.

A run downloads `items` generated 1,000-word pages from the drill's site, and the drill
kills the worker holding `compute_stats` (the CPU activity) after its first checkpoint.
The result must be the reference run's, page for page; the checkpoint the retry resumes
from held at least one interval of pages at the kill.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio.client import WorkflowHandle

from drill.case import Check, DrillCase, DrillRun
from tests.toolkit.gate import Holder
from {{ cookiecutter.package_name }} import (
    SERVICE_NAME,
)
from {{ cookiecutter.package_name }}.minimal.activities import (
    StatsState,
)
from {{ cookiecutter.package_name }}.minimal.models import (
    StatsRequest,
    StatsResult,
)
from {{ cookiecutter.package_name }}.minimal.workflows import (
    StatsWorkflow,
)
from {{ cookiecutter.package_name }}.runtime.checkpoint import (
    Checkpoint,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    open_store,
)

WORDS = 1000  # 25 ms of CPU a page: the gate, not the size, makes "mid-way" certain


class MinimalCase(DrillCase[StatsResult]):
    activity = "compute_stats"

    async def start(
        self, run: DrillRun, task_queue: str, tag: str
    ) -> WorkflowHandle[Any, StatsResult]:
        urls = [run.site.url(f"words/{WORDS}/{tag}-{i}") for i in range(run.items)]
        request = StatsRequest(urls=urls, heartbeat_timeout_seconds=run.heartbeat_timeout)
        return await run.client.start_workflow(
            StatsWorkflow.run, request, id=f"drill-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )

    async def result(
        self, run: DrillRun, handle: WorkflowHandle[Any, Any], store_url: str
    ) -> StatsResult:
        return StatsResult.model_validate(
            await asyncio.wait_for(handle.result(), run.result_timeout)
        )

    async def at_kill(
        self, run: DrillRun, store_url: str, held: Holder, reference: StatsResult
    ) -> int:
        """Pages in the held checkpoint."""
        async with open_store(store_url, key_prefix=SERVICE_NAME) as store:
            saved = await Checkpoint(
                store, held.key, StatsState, every_items=1, every_seconds=0
            ).load()
        return 0 if saved is None else len(saved.stats)

    def checks(
        self, run: DrillRun, drilled: StatsResult, reference: StatsResult, at_kill: Any
    ) -> list[Check]:
        return [
            (
                at_kill >= run.checkpoint_every,
                f"the checkpoint held {at_kill} pages' statistics at the kill (the retry"
                " starts from them)",
            )
        ]


CASE = MinimalCase()

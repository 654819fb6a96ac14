"""The pipeline's drill case (drill/case.py): `make drill` on the crawl pipeline.

A run fetches `items` generated 3,000-word documents from the drill's site in one batch
(one child workflow), and the drill kills the worker holding the fingerprint activity (the
CPU stage) after its first checkpoint. Besides an identical result, the pipeline proves
that nothing finished before the kill was computed again: the retry restored exactly the
checkpoint, and what the checkpoint did not hold the memo did.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from temporalio.client import WorkflowHandle

from drill.case import Check, DrillCase, DrillRun
from tests.toolkit.gate import Holder
from {{ cookiecutter.package_name }} import (
    SERVICE_NAME,
)
from {{ cookiecutter.package_name }}.pipeline.activities.fingerprint import (
    FingerprintState,
    signature_memo_key,
)
from {{ cookiecutter.package_name }}.pipeline.models import (
    MinHashParams,
    PipelineInput,
    PipelineOptions,
    PipelineResult,
)
from {{ cookiecutter.package_name }}.pipeline.report import (
    PipelineReport,
    read_report,
)
from {{ cookiecutter.package_name }}.pipeline.workflows import (
    PipelineWorkflow,
)
from {{ cookiecutter.package_name }}.runtime.checkpoint import (
    Checkpoint,
)
from {{ cookiecutter.package_name }}.runtime.memo import (
    Memo,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    open_store,
)

WORDS = 3000


@dataclass(frozen=True)
class AtKill:
    finished: int  # signatures memoized before the kill (each is, the moment it is computed)
    checkpointed: int  # signatures in the held checkpoint
    distinct: int  # distinct bodies in the run


class PipelineCase(DrillCase[PipelineReport]):
    activity = "fingerprint_documents"

    async def start(
        self, run: DrillRun, task_queue: str, tag: str
    ) -> WorkflowHandle[Any, PipelineResult]:
        urls = [run.site.url(f"words/{WORDS}/{tag}-{i}") for i in range(run.items)]
        # One batch (one child workflow) for the whole corpus: the drill follows its activity.
        options = PipelineOptions(
            heartbeat_timeout_seconds=run.heartbeat_timeout, batch_size=len(urls)
        )
        return await run.client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(urls=urls, options=options),
            id=f"drill-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )

    async def result(
        self, run: DrillRun, handle: WorkflowHandle[Any, Any], store_url: str
    ) -> PipelineReport:
        result = await asyncio.wait_for(handle.result(), run.result_timeout)
        async with open_store(store_url, key_prefix=SERVICE_NAME) as store:
            return await read_report(store, PipelineResult.model_validate(result), handle.id)

    def same(self, drilled: PipelineReport, reference: PipelineReport) -> bool:
        return (drilled.documents, drilled.duplicates) == (
            reference.documents,
            reference.duplicates,
        )

    async def at_kill(
        self, run: DrillRun, store_url: str, held: Holder, reference: PipelineReport
    ) -> AtKill:
        shas = sorted({d.sha256 for d in reference.documents})
        async with open_store(store_url, key_prefix=SERVICE_NAME) as store:
            memo = Memo(store, ttl_seconds=1)
            found = [await memo.get(signature_memo_key(sha, MinHashParams())) for sha in shas]
            checkpoint = Checkpoint(
                store, held.key, FingerprintState, every_items=1, every_seconds=0
            )
            saved = await checkpoint.load()
        checkpointed = 0 if saved is None else len(saved.signatures)
        return AtKill(sum(value is not None for value in found), checkpointed, len(shas))

    def checks(
        self, run: DrillRun, drilled: PipelineReport, reference: PipelineReport, at_kill: Any
    ) -> list[Check]:
        assert isinstance(at_kill, AtKill)
        fp = drilled.stats.fingerprint
        redone = fp.computed - (at_kill.distinct - at_kill.finished)
        return [
            (
                redone <= 0 and fp.restored == at_kill.checkpointed >= run.checkpoint_every,
                f"signatures finished before the kill: {at_kill.finished}; restored from the"
                f" checkpoint {fp.restored} (it held {at_kill.checkpointed}), memoized"
                f" {fp.memoized}, computed again {max(redone, 0)} (attempt {fp.attempt})",
            )
        ]


CASE = PipelineCase()

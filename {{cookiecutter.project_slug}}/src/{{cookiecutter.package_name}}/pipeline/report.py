"""Reading a finished pipeline's lists back from the state store.

The workflow returns counts and a key (`PipelineResult`); its documents, failures and
duplicate groups are in the state store, a list per batch, because at 10,000 documents they
would not fit in a Temporal payload. This module turns them back into one report: streamed
as JSON (memory stays flat however large the run) or read whole for small runs and tests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TextIO

from pydantic import BaseModel

from ..runtime.store import StateStore
from .models import (
    DocumentRef,
    FailedUrl,
    FetchResult,
    PipelineResult,
    PipelineStats,
    batch_key,
    pipeline_key,
)

SUMMARY_ROWS = 10


class MissingResultError(Exception):
    """A list of the run is no longer in the state store (expired, or another store)."""


class PipelineReport(BaseModel):
    """The whole result of a run: what `run --json` prints."""

    workflow_id: str
    stats: PipelineStats
    documents: list[DocumentRef]
    failed: list[FailedUrl]
    duplicates: list[list[str]]
    """Groups of URLs with near-duplicate bodies; each sorted, the groups sorted."""


async def batches(store: StateStore, result: PipelineResult) -> AsyncIterator[FetchResult]:
    """Each batch's documents and failures, in input order, one batch in memory at a time."""
    for index in range(result.stats.batches):
        key = batch_key(result.data_key, index, "documents")
        stored = await store.get(key)
        if stored is None:
            raise MissingResultError(f"{key} is not in the state store")
        yield FetchResult.model_validate_json(stored)


async def duplicates(store: StateStore, result: PipelineResult) -> list[list[str]]:
    key = pipeline_key(result.data_key, "duplicates")
    groups = await store.get_json(key)
    if groups is None:
        raise MissingResultError(f"{key} is not in the state store")
    return list(groups)


async def read_report(
    store: StateStore, result: PipelineResult, workflow_id: str
) -> PipelineReport:
    """The whole report in memory: fine for hundreds of documents; use `write_json` for more."""
    documents: list[DocumentRef] = []
    failed: list[FailedUrl] = []
    async for batch in batches(store, result):
        documents += batch.documents
        failed += batch.failed
    return PipelineReport(
        workflow_id=workflow_id,
        stats=result.stats,
        documents=documents,
        failed=failed,
        duplicates=await duplicates(store, result),
    )


async def write_json(
    store: StateStore, result: PipelineResult, workflow_id: str, out: TextIO
) -> None:
    """Write the report as one JSON document (a `PipelineReport`), a batch at a time."""
    out.write("{\n")
    out.write(f'  "workflow_id": {json.dumps(workflow_id)},\n')
    out.write(f'  "stats": {result.stats.model_dump_json()},\n')
    for field in ("documents", "failed"):
        out.write(f'  "{field}": [')
        first = True
        async for batch in batches(store, result):
            for item in getattr(batch, field):
                out.write(("\n    " if first else ",\n    ") + item.model_dump_json())
                first = False
        out.write("\n  ],\n" if not first else "],\n")
    groups = await duplicates(store, result)
    out.write('  "duplicates": [')
    out.write(",".join("\n    " + json.dumps(group) for group in groups))
    out.write("\n  ]\n}\n" if groups else "]\n}\n")


async def summary(store: StateStore, result: PipelineResult, workflow_id: str) -> str:
    """A few readable lines, whatever the size of the run: counts, then the first groups and
    failures."""
    stats = result.stats
    fp = stats.fingerprint
    lines = [
        f"Workflow {workflow_id}: fetched {stats.fetched} of {stats.urls} URLs "
        f"({stats.bytes:,} bytes, {stats.words:,} words) in {stats.seconds:.2f}s, "
        f"{stats.batches} batch{'' if stats.batches == 1 else 'es'}.",
        f"Fingerprints: {fp.computed} computed, {fp.memoized} memoized, "
        f"{fp.restored} restored from a checkpoint (most attempts: {fp.attempt}).",
    ]
    groups = await duplicates(store, result)
    lines.append(f"Near-duplicate groups: {len(groups)}")
    lines += [f"  {' = '.join(group)}" for group in groups[:SUMMARY_ROWS]]
    if len(groups) > SUMMARY_ROWS:
        lines.append(f"  ... and {len(groups) - SUMMARY_ROWS} more (see --json)")
    if stats.failed:
        lines.append(f"Failed ({stats.failed}):")
        shown = 0
        async for batch in batches(store, result):
            for failure in batch.failed[: SUMMARY_ROWS - shown]:
                lines.append(f"  {failure.url}: {failure.reason}")
                shown += 1
            if shown == SUMMARY_ROWS:
                break
        if stats.failed > SUMMARY_ROWS:
            lines.append(f"  ... and {stats.failed - SUMMARY_ROWS} more (see --json)")
    return "\n".join(lines)

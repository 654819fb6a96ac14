"""Stage 3, near-duplicates: group documents whose signatures say they are alike, across
every batch of the run.

Memory stays small however large the run: the batches' signatures are streamed from the
state store one batch at a time into one flat array (512 bytes a document), the grouping
runs in the process pool, and URLs are read back (a second pass) only for the documents
that ended up in a group.
"""

from __future__ import annotations

import asyncio
from array import array

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ...runtime.heartbeat import heartbeat_until_cancelled
from ...runtime.pool import CpuPool
from ...runtime.store import StateStore
from .. import minhash
from ..models import (
    PIPELINE_DATA_TTL_SECONDS,
    DocumentRef,
    DuplicatesRequest,
    DuplicatesSummary,
    FetchResult,
    batch_key,
    pipeline_key,
)


class DuplicateActivities:
    def __init__(self, store: StateStore, pool: CpuPool) -> None:
        self.store = store
        self.pool = pool

    @activity.defn(name="group_near_duplicates")
    async def group_near_duplicates(self, request: DuplicatesRequest) -> DuplicatesSummary:
        """Groups of URLs at or above the similarity threshold (identical bodies included),
        stored under `pipeline_key(data_key, "duplicates")`; returns their counts."""
        read = 0
        heartbeats = asyncio.create_task(heartbeat_until_cancelled(lambda: read))
        try:
            signatures = array("I")
            for index in range(request.batches):
                documents = await self._documents(request.data_key, index)
                by_sha = await self._signatures(request.data_key, index) if documents else {}
                for document in documents:
                    signatures.extend(by_sha[document.sha256])
                read = index + 1
            # Comparing candidates is CPU work too: off the event loop, into the pool.
            groups = await self.pool.run(
                minhash.near_duplicate_groups, signatures, request.num_perm, request.threshold
            )
            del signatures
            members = {i for group in groups for i in group}
            urls: dict[int, str] = {}
            position = 0
            for index in range(request.batches):
                for document in await self._documents(request.data_key, index):
                    if position in members:
                        urls[position] = document.url
                    position += 1
        finally:
            heartbeats.cancel()
        named = sorted(sorted(urls[i] for i in group) for group in groups)
        await self.store.put_json(
            pipeline_key(request.data_key, "duplicates"),
            named,
            ttl_seconds=PIPELINE_DATA_TTL_SECONDS,
        )
        return DuplicatesSummary(groups=len(named), documents=len(members))

    async def _documents(self, data_key: str, index: int) -> list[DocumentRef]:
        key = batch_key(data_key, index, "documents")
        stored = await self.store.get(key)
        if stored is None:
            raise ApplicationError(
                f"documents {key} are not in the state store",
                type="MissingInput",
                non_retryable=True,  # no retry brings it back
            )
        return FetchResult.model_validate_json(stored).documents

    async def _signatures(self, data_key: str, index: int) -> dict[str, list[int]]:
        key = batch_key(data_key, index, "signatures")
        signatures = await self.store.get_json(key)
        if signatures is None:
            raise ApplicationError(
                f"signatures {key} are not in the state store",
                type="MissingSignatures",
                non_retryable=True,
            )
        return dict(signatures)

"""Stage 3, near-duplicates: group documents whose signatures say they are alike."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from .. import minhash
from ..models import DuplicatesRequest
from ..pool import CpuPool
from ..store import StateStore


class DuplicateActivities:
    def __init__(self, store: StateStore, pool: CpuPool) -> None:
        self.store = store
        self.pool = pool

    @activity.defn(name="group_near_duplicates")
    async def group_near_duplicates(self, request: DuplicatesRequest) -> list[list[str]]:
        """Groups of URLs at or above the similarity threshold (identical bodies included)."""
        signatures = await self.store.get_json(request.signatures_key)
        if signatures is None:
            raise ApplicationError(
                f"signatures {request.signatures_key} are not in the state store",
                type="MissingSignatures",
            )
        items = [(d.url, d.sha256, signatures[d.sha256]) for d in request.documents]
        # Comparing candidates is CPU work too: off the event loop, into the pool.
        return await self.pool.run(minhash.near_duplicate_groups, items, request.threshold)

"""Stage 2, fingerprint: CPU-bound work on every core, resumable after a crash.

The pattern: an async activity that sends chunks of documents to a process pool and
awaits them. We chose it over a sync activity on `activity_executor=ProcessPoolExecutor`
because everything that is not arithmetic stays in the worker's event loop, where it is
simple: heartbeats, cancellation (a plain `asyncio.CancelledError`), reads from the state
store, memoization and checkpoints. The children only compute; nothing they hold needs a
`SharedStateManager`, and nothing but the inputs and results has to pickle.

Resuming: the activity checkpoints the signatures it has (every N items or T seconds) under
a key stable across attempts. An attempt that starts after a crash loads the checkpoint and
computes only what is missing. Per document, results are also memoized by content (body
SHA-256 + MinHash parameters), so a document seen in an earlier run is not computed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ...runtime.checkpoint import Checkpoint
from ...runtime.heartbeat import heartbeat_until_cancelled
from ...runtime.memo import Memo, memo_key
from ...runtime.metrics import ServiceMetrics
from ...runtime.pool import CpuPool
from ...runtime.store import StateStore
from .. import minhash
from ..models import (
    PIPELINE_DATA_TTL_SECONDS,
    DocumentRef,
    FetchResult,
    FingerprintRequest,
    FingerprintStats,
    MinHashParams,
    body_key,
)

MINHASH_VERSION = 3  # bump when `minhash.signature` changes: old memo entries stop matching
CHECKPOINT_TTL_SECONDS = 24 * 3600  # checkpoints of abandoned runs must not pile up
MISSING_BODY = "MissingBody"
"""The error type of a body that is gone from the store or is not its SHA-256's content."""


class FingerprintState(BaseModel):
    """What a checkpoint holds: the signatures computed so far, by body SHA-256."""

    signatures: dict[str, list[int]] = {}


def signature_memo_key(sha256: str, params: MinHashParams) -> str:
    return memo_key("minhash", MINHASH_VERSION, sha256, params.num_perm, params.shingle_size)


class FingerprintActivities:
    """The fingerprint activity with its pool, store and checkpoint policy injected."""

    def __init__(
        self,
        store: StateStore,
        pool: CpuPool,
        *,
        chunk_size: int,
        checkpoint_every_items: int,
        checkpoint_every_seconds: float,
        memo_ttl_seconds: float,
    ) -> None:
        self.store = store
        self.pool = pool
        self.chunk_size = chunk_size
        self.checkpoint_every_items = checkpoint_every_items
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.memo = Memo(store, ttl_seconds=memo_ttl_seconds)

    @activity.defn(name="fingerprint_documents")
    async def fingerprint_documents(self, request: FingerprintRequest) -> FingerprintStats:
        """MinHash signatures of every document of a batch, on all cores; resumes from a
        checkpoint. The signatures go to the state store under `request.signatures_key`."""
        info = activity.info()
        metrics = ServiceMetrics.for_current_activity()
        params = request.minhash
        checkpoint = Checkpoint.for_current_activity(
            self.store,
            FingerprintState,
            every_items=self.checkpoint_every_items,
            every_seconds=self.checkpoint_every_seconds,
            ttl_seconds=CHECKPOINT_TTL_SECONDS,
        )
        documents = await self._documents(request.documents_key)
        wanted = sorted({d.sha256 for d in documents})

        def check(saved: FingerprintState) -> None:
            """A checkpoint of this batch: its bodies only, each a signature of the right size."""
            unknown = saved.signatures.keys() - set(wanted)
            if unknown:
                raise ValueError(f"{len(unknown)} signatures of bodies not in this batch")
            for signature in saved.signatures.values():
                minhash.checked_signature(signature, params.num_perm)

        loaded = await checkpoint.load(check)
        state = loaded or FingerprintState()
        restored = len(state.signatures)
        if loaded is not None:
            metrics.checkpoint_restores.add(1)
            metrics.signatures_restored.add(restored)

        # One round trip for every memo lookup of the batch, not one per document.
        missing = [sha256 for sha256 in wanted if sha256 not in state.signatures]
        cached = await self.memo.get_many(
            [signature_memo_key(sha256, params) for sha256 in missing],
            lambda value: minhash.checked_signature(value, params.num_perm),
        )
        todo = []
        for sha256, found in zip(missing, cached, strict=True):
            if found is None:
                todo.append(sha256)
            else:
                state.signatures[sha256] = found
        memoized = len(missing) - len(todo)
        metrics.memo_hits.add(memoized)
        metrics.signatures_memoized.add(memoized)
        metrics.memo_misses.add(len(todo))

        computed = 0

        async def compute(chunk: list[str]) -> None:
            nonlocal computed
            texts = await self._texts(chunk)
            results = await self.pool.run(
                minhash.signatures, texts, params.num_perm, params.shingle_size
            )
            # Memoized first, then added to the state: a checkpoint never holds a signature
            # that the memo does not, so a killed attempt's work is found in one place or
            # both, and the next attempt's counts add up (restored + memoized = done).
            await self.memo.put_many(
                {signature_memo_key(h, params): s for h, s in zip(chunk, results, strict=True)}
            )
            state.signatures.update(zip(chunk, results, strict=True))
            computed += len(chunk)
            metrics.signatures_computed.add(len(chunk))
            await checkpoint.maybe_save(state, len(chunk))

        def details() -> dict[str, int]:
            """Documents done and in all (a repeated body counts each time): `run` shows them
            as the batch's progress (starter.py)."""
            done = sum(1 for d in documents if d.sha256 in state.signatures)
            return {"done": done, "total": len(documents)}

        heartbeats = asyncio.create_task(heartbeat_until_cancelled(details))
        try:
            await _run_bounded(
                [todo[i : i + self.chunk_size] for i in range(0, len(todo), self.chunk_size)],
                compute,
                limit=self.pool.processes * 2,  # keep every process busy, queue little
            )
        except asyncio.CancelledError:
            await asyncio.shield(checkpoint.save(state))  # the next attempt starts from here
            raise
        finally:
            heartbeats.cancel()
            metrics.checkpoint_saves.add(checkpoint.saves)

        await self.store.put_json(
            request.signatures_key, state.signatures, ttl_seconds=PIPELINE_DATA_TTL_SECONDS
        )
        await checkpoint.clear()
        return FingerprintStats(
            computed=computed, restored=restored, memoized=memoized, attempt=info.attempt
        )

    async def _documents(self, key: str) -> list[DocumentRef]:
        stored = await self.store.get(key)
        if stored is None:  # stage 1 stored them; they can only be gone if the store lost them
            raise ApplicationError(
                f"documents {key} are not in the state store",
                type="MissingInput",
                non_retryable=True,  # no retry brings it back
            )
        return FetchResult.model_validate_json(stored).documents

    async def _texts(self, chunk: list[str]) -> list[str]:
        # Checked against their SHA-256: a body altered in the store is never fingerprinted.
        bodies = await self.store.get_verified_many([(body_key(h), h) for h in chunk])
        for sha256, body in zip(chunk, bodies, strict=True):
            if body is None:  # stage 1 stored it: the store lost it, or it was altered since
                raise ApplicationError(
                    f"body {sha256} is missing from the state store, or is not that content",
                    type=MISSING_BODY,
                    non_retryable=True,  # the same read would fail again: the batch fetches again
                )
        return [body.decode("utf-8", errors="replace") for body in bodies if body is not None]


async def _run_bounded(
    chunks: list[list[str]], work: Callable[[list[str]], Awaitable[None]], *, limit: int
) -> None:
    """Run `work` on every chunk, at most `limit` at a time; the first error cancels the rest."""
    semaphore = asyncio.Semaphore(limit)

    async def bounded(chunk: list[str]) -> None:
        async with semaphore:
            await work(chunk)

    try:
        async with asyncio.TaskGroup() as group:
            for chunk in chunks:
                group.create_task(bounded(chunk))
    except BaseExceptionGroup as errors:
        # Raise the error itself: its type and message are what Temporal records for the
        # attempt (e.g. the pool's ApplicationError, Redis's ConnectionError), not "unhandled
        # errors in a TaskGroup". The group adds nothing but size to the recorded failure.
        raise errors.exceptions[0] from None

"""A test-only service for the runtime's own tests: one workflow, one checkpointed activity.

The runtime tests (worker drain, two workers, kill -9, health, metrics) must not depend on
a sample, which a team deletes. This is the smallest service that has what they need: an
activity that does CPU work on the worker's pool item by item, memoizes each result and
checkpoints its progress (so a gate can hold it mid-way: tests/toolkit/gate.py), and
returns what it restored, memoized and computed, so a test can prove where a retry resumed.

    python -m tests.toolkit.gated_worker tests.runtime.probe:SERVICE   # SPEC below

Its settings are the runtime's own (`RuntimeSettings`): checkpoint interval, pool size.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import activity, workflow
from temporalio.common import RetryPolicy, VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from {{ cookiecutter.package_name }}.runtime.checkpoint import (
        Checkpoint,
    )
    from {{ cookiecutter.package_name }}.runtime.heartbeat import (
        heartbeat_until_cancelled,
    )
    from {{ cookiecutter.package_name }}.runtime.memo import (
        Memo,
        memo_key,
    )
    from {{ cookiecutter.package_name }}.runtime.metrics import (
        ServiceMetrics,
    )
    from {{ cookiecutter.package_name }}.runtime.pool import (
        CpuPool,
    )
    from {{ cookiecutter.package_name }}.runtime.settings import (
        RuntimeSettings,
    )
    from {{ cookiecutter.package_name }}.runtime.store import (
        StateStore,
    )
    from {{ cookiecutter.package_name }}.runtime.worker import (
        Registration,
        Service,
    )

    from .pool_work import (  # the CPU work: pool processes import that module, not this
        square,
    )

SPEC = "tests.runtime.probe:SERVICE"  # for WorkerProcess.start(service=...)
ACTIVITY = "probe_squares"


class ProbeInput(BaseModel):
    items: int = Field(ge=1)
    """How many items the activity works through (item i is i squared)."""

    heartbeat_timeout_seconds: float = 2.0
    """How soon a retry starts after the worker running the activity dies."""


class ProbeState(BaseModel):
    """What the checkpoint holds: the results of items 0, 1, ... so far."""

    values: list[int] = []


class ProbeResult(BaseModel):
    total: int  # the sum of every item's result: `expected_total(items)` if nothing was lost
    attempt: int  # the attempt that finished
    restored: int  # items taken from an earlier attempt's checkpoint
    memoized: int  # items taken from the memo
    computed: int  # items computed on the pool by this attempt


def expected_total(items: int) -> int:
    return sum(n * n for n in range(items))


class ProbeActivities:
    def __init__(
        self,
        store: StateStore,
        pool: CpuPool,
        *,
        checkpoint_every_items: int,
        checkpoint_every_seconds: float,
        memo_ttl_seconds: float,
    ) -> None:
        self.store = store
        self.pool = pool
        self.checkpoint_every_items = checkpoint_every_items
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.memo = Memo(store, ttl_seconds=memo_ttl_seconds)

    @activity.defn(name=ACTIVITY)
    async def squares(self, request: ProbeInput) -> ProbeResult:
        """Square 0..items-1 one at a time on the pool, memoized, checkpointed every N items."""
        metrics = ServiceMetrics.for_current_activity()
        checkpoint = Checkpoint.for_current_activity(
            self.store,
            ProbeState,
            every_items=self.checkpoint_every_items,
            every_seconds=self.checkpoint_every_seconds,
        )
        loaded = await checkpoint.load()
        state = loaded or ProbeState()
        restored = len(state.values)
        if loaded is not None:
            metrics.checkpoint_restores.add(1)
        memoized = computed = 0
        heartbeats = asyncio.create_task(heartbeat_until_cancelled(lambda: len(state.values)))
        try:
            for n in range(restored, request.items):
                key = memo_key("probe-square", 1, n)
                found, value = await self.memo.lookup(key)
                if found:
                    memoized += 1
                else:
                    value = await self.pool.run(square, n)
                    await self.memo.put(key, value)
                    computed += 1
                state.values.append(int(value))
                await checkpoint.maybe_save(state)
        finally:
            heartbeats.cancel()
            metrics.checkpoint_saves.add(checkpoint.saves)
            metrics.memo_hits.add(memoized)
            metrics.memo_misses.add(computed)
        await checkpoint.clear()
        return ProbeResult(
            total=sum(state.values),
            attempt=activity.info().attempt,
            restored=restored,
            memoized=memoized,
            computed=computed,
        )


@workflow.defn
class ProbeWorkflow:
    @workflow.run
    async def run(self, request: ProbeInput) -> ProbeResult:
        return await workflow.execute_activity_method(
            ProbeActivities.squares,
            request,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=1)
            ),
        )


def register(settings: RuntimeSettings, store: StateStore, pool: CpuPool) -> Registration:
    activities = ProbeActivities(
        store,
        pool,
        checkpoint_every_items=settings.checkpoint_every_items,
        checkpoint_every_seconds=settings.checkpoint_every_seconds,
        memo_ttl_seconds=settings.memo_ttl_seconds,
    )
    return Registration(
        workflows=[ProbeWorkflow],
        activities=[activities.squares],
        versioning={ProbeWorkflow: VersioningBehavior.AUTO_UPGRADE},
    )


SERVICE = Service(settings=RuntimeSettings, register=register)

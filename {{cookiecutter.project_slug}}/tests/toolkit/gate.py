"""A gate that holds a worker at a known point of an activity until the test opens it.

Tests that must act "mid-activity" (kill -9, SIGTERM, cancel, a store going down) cannot
hope to catch the activity in flight: on a fast machine it is over before they look, on a
slow one they wait for nothing. The gate makes the moment certain instead. It wraps the
worker's state store: the first time a key with a chosen prefix is written (by default a
checkpoint, so some progress is saved), optionally only by one activity type, the gate
closes, and from then on every store call of that worker waits until the test opens the
gate. The activity cannot finish meanwhile: it cannot read its next input, record a result
or store its output.

    gate = Gate(tmp_path / "gate", activity="compute_stats")
    async with running_worker(env, gate=gate) as worker:      # tests/toolkit/worker.py
        handle = await client.start_workflow(...)
        await gate.wait_held(worker)   # compute_stats saved a checkpoint, and is held
        gate.holder().identity         # == worker.identity: who holds it, and which activity

The gate talks to the test through two files in a folder: `held` appears when the gate has
closed (a JSON `Holder`: the worker's identity and pid, the activity, the key); the test
creates `open` to let the worker go on. So it works the same for a worker in this process
(`GatedStore(store, gate)`) and in a subprocess (`gate.env()` for
`python -m tests.toolkit.gated_worker`). A gate closes once per process.

A held call that is cancelled (the workflow was cancelled, the worker is shutting down past
its grace) releases the gate for good, so cancellation and clean-up are never blocked.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

from temporalio import activity

from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
)

GATE_DIR = "TEST_GATE_DIR"
GATE_PREFIX = "TEST_GATE_PREFIX"
GATE_ACTIVITY = "TEST_GATE_ACTIVITY"
CHECKPOINT_PREFIX = "checkpoint:"  # as runtime/checkpoint.py's activity_checkpoint_key


class _Exits(Protocol):
    @property
    def returncode(self) -> int | None: ...


@dataclass(frozen=True)
class Holder:
    """Who closed the gate, from its `held` file: the worker and the activity it held."""

    identity: str  # the worker's Temporal identity
    pid: int
    key: str  # the store key whose put closed the gate
    activity_type: str = ""  # empty: the put came from outside an activity
    activity_id: str = ""
    workflow_id: str = ""  # of the workflow that runs the activity (a child, maybe)
    workflow_run_id: str = ""
    attempt: int = 0


@dataclass(frozen=True)
class Gate:
    """The folder through which a test and a gated worker meet.

    It closes after the first put of a key starting with `prefix`, made by an activity of
    type `activity` (any code at all if `activity` is empty).
    """

    folder: Path
    prefix: str = CHECKPOINT_PREFIX
    activity: str = ""

    @property
    def held_file(self) -> Path:
        return self.folder / "held"

    @property
    def open_file(self) -> Path:
        return self.folder / "open"

    def env(self) -> dict[str, str]:
        """Environment variables that make `python -m tests.toolkit.gated_worker` use this gate."""
        return {GATE_DIR: str(self.folder), GATE_PREFIX: self.prefix, GATE_ACTIVITY: self.activity}

    @classmethod
    def from_env(cls) -> Gate | None:
        """The gate `env()` described, or None (an ungated worker)."""
        if GATE_DIR not in os.environ:
            return None
        return cls(
            Path(os.environ[GATE_DIR]),
            os.environ.get(GATE_PREFIX, CHECKPOINT_PREFIX),
            os.environ.get(GATE_ACTIVITY, ""),
        )

    def for_worker(self, name: str) -> Gate:
        """The same gate in a subfolder of its own: one per worker (each closes on its own)."""
        return replace(self, folder=self.folder / name)

    def is_held(self) -> bool:
        return self.held_file.exists()

    def holder(self) -> Holder:
        """Who holds the gate (call it once `is_held()`)."""
        return Holder(**json.loads(self.held_file.read_text()))

    def open(self) -> None:
        """Let the worker go on, now and for the rest of its life."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.open_file.touch()

    async def wait_held(self, worker: _Exits | None = None, timeout: float = 120.0) -> Holder:
        """Wait until the worker is held; who holds it. Fails at once if `worker` (a
        `WorkerProcess` or any process) exits first.

        The timeout only guards against a broken test; no speed makes it pass or fail.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.is_held():
            if worker is not None and worker.returncode is not None:
                raise AssertionError(f"the worker exited ({worker.returncode}) before the gate")
            if loop.time() > deadline:
                raise AssertionError(f"the gate in {self.folder} never closed")
            await asyncio.sleep(0.02)
        return self.holder()


def _default_identity() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"  # the SDK's default worker identity


class GatedStore(StateStore):
    """`inner`, except that once the gate has closed every call waits for it to open."""

    def __init__(self, inner: StateStore, gate: Gate, *, identity: str | None = None) -> None:
        self.inner = inner
        self.gate = gate
        self.identity = identity or _default_identity()
        gate.folder.mkdir(parents=True, exist_ok=True)
        self._closed = False
        self._released = False

    async def _pass(self) -> None:
        if not self._closed or self._released:
            return
        try:
            while not self.gate.open_file.exists():
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            self._released = True  # never block a cancellation or its clean-up
            raise
        self._released = True

    def _closes(self, key: str) -> bool:
        if self._closed or not key.startswith(self.gate.prefix):
            return False
        if not self.gate.activity:
            return True
        return activity.in_activity() and activity.info().activity_type == self.gate.activity

    def _close(self, key: str) -> None:
        holder = Holder(self.identity, os.getpid(), key)
        if activity.in_activity():
            info = activity.info()
            holder = replace(
                holder,
                activity_type=info.activity_type,
                activity_id=info.activity_id,
                workflow_id=info.workflow_id or "",
                workflow_run_id=info.workflow_run_id or "",
                attempt=info.attempt,
            )
        self._closed = True
        # Written whole, then renamed: a test that sees `held` can always read it.
        partial = self.gate.held_file.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(holder)))
        partial.replace(self.gate.held_file)

    async def get(self, key: str) -> bytes | None:
        await self._pass()
        return await self.inner.get(key)

    async def put(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        await self._pass()
        await self.inner.put(key, value, ttl_seconds=ttl_seconds)
        if self._closes(key):
            self._close(key)  # the value is stored: what the test waits for has happened

    async def delete(self, key: str) -> None:
        await self._pass()
        await self.inner.delete(key)

    async def close(self) -> None:
        await self.inner.close()

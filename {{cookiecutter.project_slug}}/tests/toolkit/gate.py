"""A gate that holds a worker at a known point of an activity until the test opens it.

Tests that must act "mid-activity" (kill -9, SIGTERM, cancel, a store going down) cannot
hope to catch the activity in flight: on a fast machine it is over before they look, on a
slow one they wait for nothing. The gate makes the moment certain instead. It wraps the
worker's state store: the first time a key with a chosen prefix is written (by default a
checkpoint, so some progress is saved), the gate closes, and from then on every store call
of that worker waits until the test opens the gate. The activity cannot finish meanwhile:
it cannot read its next input, record a result or store its output.

The gate talks to the test through two files in a folder: `held` appears when the gate has
closed; the test creates `open` to let the worker go on. So it works the same for a worker
in this process (`GatedStore(store, gate)`) and in a subprocess (`gate.env()` for
`python -m tests.toolkit.gated_worker`).

A held call that is cancelled (the workflow was cancelled, the worker is shutting down past
its grace) releases the gate for good, so cancellation and clean-up are never blocked.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
)

GATE_DIR = "TEST_GATE_DIR"
GATE_PREFIX = "TEST_GATE_PREFIX"
CHECKPOINT_PREFIX = "checkpoint:"


@dataclass(frozen=True)
class Gate:
    """The folder through which a test and a gated worker meet."""

    folder: Path
    prefix: str = CHECKPOINT_PREFIX  # the gate closes after the first put of such a key

    @property
    def held_file(self) -> Path:
        return self.folder / "held"

    @property
    def open_file(self) -> Path:
        return self.folder / "open"

    def env(self) -> dict[str, str]:
        """Environment variables that make `python -m tests.toolkit.gated_worker` use this gate."""
        return {GATE_DIR: str(self.folder), GATE_PREFIX: self.prefix}

    @classmethod
    def from_env(cls) -> Gate:
        return cls(Path(os.environ[GATE_DIR]), os.environ.get(GATE_PREFIX, CHECKPOINT_PREFIX))

    def is_held(self) -> bool:
        return self.held_file.exists()

    def open(self) -> None:
        self.open_file.touch()

    async def wait_held(
        self, timeout: float = 120.0, process: asyncio.subprocess.Process | None = None
    ) -> None:
        """Wait until the worker is held. Fails at once if `process` (the worker) exits.

        The timeout only guards against a broken test; no speed makes it pass or fail.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.is_held():
            if process is not None and process.returncode is not None:
                raise AssertionError(f"the worker exited ({process.returncode}) before the gate")
            if loop.time() > deadline:
                raise AssertionError(f"the gate in {self.folder} never closed")
            await asyncio.sleep(0.02)


class GatedStore(StateStore):
    """`inner`, except that once the gate has closed every call waits for it to open."""

    def __init__(self, inner: StateStore, gate: Gate) -> None:
        self.inner = inner
        self.gate = gate
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

    async def get(self, key: str) -> bytes | None:
        await self._pass()
        return await self.inner.get(key)

    async def put(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        await self._pass()
        await self.inner.put(key, value, ttl_seconds=ttl_seconds)
        if not self._closed and key.startswith(self.gate.prefix):
            self._closed = True  # the value is stored: what the test waits for has happened
            self.gate.held_file.touch()

    async def delete(self, key: str) -> None:
        await self._pass()
        await self.inner.delete(key)

    async def close(self) -> None:
        await self.inner.close()

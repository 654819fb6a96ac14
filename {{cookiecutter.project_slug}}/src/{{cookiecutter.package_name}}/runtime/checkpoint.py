"""Checkpoints: a long activity saves its state now and then and resumes from it on a retry.

When a worker dies, Temporal retries the activity from the start. Heartbeat details
could carry progress, but they are sent at most every 0.8 x the heartbeat timeout and
must stay small; a checkpoint keeps the intermediate results themselves in the state
store, saved every N items or T seconds (whichever comes first), so a retry redoes at
most one interval. The heartbeat then only needs a small cursor, for liveness and for
`temporal workflow describe`.

    class Progress(BaseModel):
        signatures: list[list[int]] = []

    @activity.defn
    async def fingerprint(docs: list[str]) -> list[list[int]]:
        checkpoint = Checkpoint.for_current_activity(
            store, Progress, every_items=100, every_seconds=5
        )
        progress = await checkpoint.load(check) or Progress()  # None: first, or unusable
        for doc in docs[len(progress.signatures):]:
            progress.signatures.append(signature(doc))
            if await checkpoint.maybe_save(progress):      # every_seconds < heartbeat timeout
                activity.heartbeat(len(progress.signatures))
        await checkpoint.clear()                           # done: nothing left to resume
        return progress.signatures

where `check(progress)` raises ValueError if the state cannot belong to this input (say,
more signatures than `docs`): the model checks shapes and fixed ranges (pydantic fields
and validators), `check` what depends on the activity's input, such as a cursor's range.

Each save is one `StateStore.put` (atomic) of a JSON header line, with the format, a
`version` and the SHA-256 of the state, followed by the state's JSON. A crash mid-save
leaves the previous checkpoint or the new one, never a mix. A value that does not decode,
has another format or version, fails its checksum, was saved under another key, no longer
validates against the model or fails `check` is logged as a warning and ignored: the work
is recomputed, never resumed from something wrong. Bump `version` when the state's
meaning changes but not its shape.

The state is serialised on the event loop: keep it to a few MB. This module imports only
the standard library, temporalio, pydantic and the `StateStore` interface, so it can be
copied into another project on its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import activity

from .store import StateStore

FORMAT = 1  # of the envelope; a different one is ignored, never guessed at

S = TypeVar("S", bound=BaseModel)

logger = logging.getLogger(__name__)


def activity_checkpoint_key(info: activity.Info) -> str:
    """The key of an activity's checkpoint: the same for every attempt of one activity.

    It differs between activities of a workflow run and between runs (a new run, for
    instance after continue-as-new or a workflow retry, starts from scratch).
    """
    if info.workflow_id is None:  # a standalone activity, started by a client
        return f"checkpoint:activity:{info.activity_id}:{info.activity_run_id}"
    return f"checkpoint:{info.workflow_id}:{info.workflow_run_id}:{info.activity_id}"


class Checkpoint(Generic[S]):
    """Saves and restores one activity's state (a pydantic model) in a `StateStore`."""

    def __init__(
        self,
        store: StateStore,
        key: str,
        model: type[S],
        *,
        every_items: int,
        every_seconds: float,
        ttl_seconds: float | None = None,
        version: int | str = 1,
    ) -> None:
        if every_items < 1:
            raise ValueError(f"every_items must be at least 1, not {every_items}")
        if every_seconds < 0:
            raise ValueError(f"every_seconds must not be negative, not {every_seconds}")
        self.store = store
        self.key = key
        self.model = model
        self.every_items = every_items
        self.every_seconds = every_seconds
        self.ttl_seconds = ttl_seconds
        self.version = version
        self.saves = 0  # counters, for stats and metrics
        self.save_seconds = 0.0
        self.last_save_bytes = 0
        self._items_since_save = 0
        self._last_save = time.monotonic()

    @classmethod
    def for_current_activity(
        cls,
        store: StateStore,
        model: type[S],
        *,
        every_items: int,
        every_seconds: float,
        ttl_seconds: float | None = None,
        version: int | str = 1,
    ) -> Checkpoint[S]:
        """The checkpoint of the running activity (call it inside the activity)."""
        return cls(
            store,
            activity_checkpoint_key(activity.info()),
            model,
            every_items=every_items,
            every_seconds=every_seconds,
            ttl_seconds=ttl_seconds,
            version=version,
        )

    async def load(self, check: Callable[[S], object] | None = None) -> S | None:
        """The saved state, or None if there is none or it cannot be trusted (logged).

        `check(state)` may raise ValueError (or TypeError) to refuse a state that is valid for
        the model but not for this input: a cursor past the end of the items, say.
        """
        raw = await self.store.get(self.key)
        if raw is None:
            return None
        try:
            state = self._decode(raw)
            if check is not None:
                try:
                    check(state)
                except (ValueError, TypeError) as exc:
                    raise _UnusableError(f"refused by its check: {exc}") from None
            return state
        except _UnusableError as reason:
            logger.warning("checkpoint %s ignored, the work is recomputed: %s", self.key, reason)
            return None

    async def save(self, state: S) -> None:
        """Save `state` now, replacing the previous checkpoint in one atomic write."""
        started = time.monotonic()
        data = self._encode(state)
        await self.store.put(self.key, data, ttl_seconds=self.ttl_seconds)
        self._last_save = time.monotonic()
        self._items_since_save = 0
        self.saves += 1
        self.save_seconds += self._last_save - started
        self.last_save_bytes = len(data)

    async def maybe_save(self, state: S, items: int = 1) -> bool:
        """Count `items` more items done; save if `every_items` or `every_seconds` is reached.

        Returns whether it saved. Call it after the state includes those items.
        """
        self._items_since_save += items
        due = (
            self._items_since_save >= self.every_items
            or time.monotonic() - self._last_save >= self.every_seconds
        )
        if due:
            await self.save(state)
        return due

    async def clear(self) -> None:
        """Delete the checkpoint: call it when the activity has finished its work."""
        await self.store.delete(self.key)

    def _encode(self, state: S) -> bytes:
        state_json = state.model_dump_json().encode()
        header = {
            "format": FORMAT,
            "version": self.version,
            "key": self.key,
            "sha256": hashlib.sha256(state_json).hexdigest(),
        }
        return json.dumps(header, separators=(",", ":")).encode() + b"\n" + state_json

    def _decode(self, raw: bytes) -> S:
        header_line, newline, state_json = raw.partition(b"\n")
        try:
            header: Any = json.loads(header_line)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise _UnusableError(f"no JSON header ({exc})") from None
        if not newline or not isinstance(header, dict):
            raise _UnusableError("not a checkpoint")
        if header.get("format") != FORMAT:
            raise _UnusableError(f"format {header.get('format')!r}, expected {FORMAT}")
        if header.get("version") != self.version:
            raise _UnusableError(f"version {header.get('version')!r}, expected {self.version!r}")
        if header.get("key") != self.key:  # another activity's checkpoint, copied here
            raise _UnusableError(f"saved for another key ({str(header.get('key'))[:120]!r})")
        if hashlib.sha256(state_json).hexdigest() != header.get("sha256"):
            raise _UnusableError("checksum mismatch (torn or altered)")
        try:
            return self.model.model_validate_json(state_json)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "state"
            raise _UnusableError(
                f"not a valid {self.model.__name__} ({exc.error_count()} errors;"
                f" {where}: {first['msg']})"
            ) from None


class _UnusableError(Exception):
    """Why a stored checkpoint cannot be used."""

"""The checkpoint pattern, copied alone: an attempt that crashes, a retry that resumes.

Run by tests/test_patterns.py in a venv holding only the files and dependencies that
docs/patterns.md lists, with the package copied as `yourpackage`.
"""

from __future__ import annotations

import asyncio
import os
import sys

from pydantic import BaseModel
from temporalio import activity
from temporalio.testing import ActivityEnvironment
from yourpackage.runtime.checkpoint import Checkpoint, activity_checkpoint_key
from yourpackage.runtime.store import SqliteStateStore


class Progress(BaseModel):
    squares: list[int] = []


class CrashError(Exception):
    """Stands for the worker dying mid-attempt."""


async def main(db: str) -> None:
    computed: list[int] = []
    crash_at: int | None = 6

    async with SqliteStateStore(db) as store:

        @activity.defn
        async def square_all(numbers: list[int]) -> list[int]:
            checkpoint = Checkpoint.for_current_activity(
                store, Progress, every_items=2, every_seconds=60
            )

            def check(saved: Progress) -> None:  # a state this input cannot have
                if len(saved.squares) > len(numbers):
                    raise ValueError(f"{len(saved.squares)} squares of {len(numbers)} numbers")

            state = await checkpoint.load(check) or Progress()
            for n in numbers[len(state.squares) :]:
                if n == crash_at:
                    raise CrashError
                computed.append(n)
                state.squares.append(n * n)
                await checkpoint.maybe_save(state)
            await checkpoint.clear()
            return state.squares

        env = ActivityEnvironment()  # the same activity and workflow ids for both attempts
        numbers = list(range(10))
        try:
            await env.run(square_all, numbers)
            raise AssertionError("the first attempt should have crashed")
        except CrashError:
            pass
        crash_at = None
        assert await env.run(square_all, numbers) == [n * n for n in numbers]
        # Saved after 0-1, 2-3 and 4-5: the retry redid nothing of that, and did the rest once.
        assert computed == numbers, computed
        key = activity_checkpoint_key(env.info)
        assert await store.get(key) is None, "clear() left the checkpoint behind"

        # A checkpoint of another version, or a torn one, is ignored rather than trusted.
        saved = Checkpoint(store, key, Progress, every_items=1, every_seconds=60, version=1)
        await saved.save(Progress(squares=[1, 4]))
        newer = Checkpoint(store, key, Progress, every_items=1, every_seconds=60, version=2)
        assert await newer.load() is None
        assert await saved.load() == Progress(squares=[1, 4])
        raw = await store.get(key)
        assert raw is not None
        await store.put(key, raw[:-3])
        assert await saved.load() is None


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
    print("ok", flush=True)
    os._exit(0)  # skip finalisation, where the SDK's threads can crash (sdk-python issue 300)

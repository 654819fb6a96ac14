"""The memoize pattern, copied alone: computed once, then a hit, in this process and another.

Run by tests/test_patterns.py in a venv holding only the files and dependencies that
docs/patterns.md lists (none beyond the standard library), as package `yourpackage`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from yourpackage.runtime.memo import Memo, memo_key, memoize
from yourpackage.runtime.store import SqliteStateStore

KEY_IN_A_CHILD = (
    "import sys; from yourpackage.runtime.memo import memo_key;"
    " print(memo_key('word_count', 1, sys.argv[1], True))"
)


async def main(db: str) -> None:
    calls: list[str] = []

    async with SqliteStateStore(db) as store:
        memo = Memo(store, ttl_seconds=600)

        @memoize(memo, name="word_count", version=1)
        async def word_count(text: str, lower: bool = True) -> dict[str, int]:
            calls.append(text)
            counts: dict[str, int] = {}
            for word in (text.lower() if lower else text).split():
                counts[word] = counts.get(word, 0) + 1
            return counts

        first = await word_count("A b a")
        again = await word_count(text="A b a", lower=True)  # the same call, spelt differently
        assert first == again == {"a": 2, "b": 1}
        assert calls == ["A b a"], calls
        assert (memo.hits, memo.misses) == (1, 1)
        await word_count("A b a", lower=False)
        assert len(calls) == 2

    # Another process, with another hash seed, computes the same key and finds the value.
    child = subprocess.run(
        [sys.executable, "-c", KEY_IN_A_CHILD, "A b a"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    key = child.stdout.strip()
    assert key == memo_key("word_count", 1, "A b a", True)
    async with SqliteStateStore(db) as reopened:
        assert await Memo(reopened, ttl_seconds=600).get(key) == {"a": 2, "b": 1}
        found, _ = await Memo(reopened, ttl_seconds=600).lookup(
            memo_key("word_count", 2, "A b a", True)  # a new version: not computed yet
        )
        assert not found


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
    print("ok", flush=True)

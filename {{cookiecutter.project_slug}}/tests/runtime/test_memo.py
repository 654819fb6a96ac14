"""Memoization: content keys the same in every process, hits, misses, expiry, the decorator.

Tests taking `store` run once per state store backend, SQLite and Redis (see conftest.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap

import pytest
from pydantic import BaseModel, Field

from {{ cookiecutter.package_name }}.runtime.memo import (
    Memo,
    memo_key,
    memoize,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
)

ARGS = ("a" * 64, 128, 3, {"b": [1.5, None, True], "a": "é"})


async def test_a_miss_then_a_hit(store: StateStore) -> None:
    memo = Memo(store, ttl_seconds=60)
    key = memo_key("minhash", 1, *ARGS)
    assert await memo.get(key) is None
    await memo.put(key, [3, 1, 2])
    assert await memo.get(key) == [3, 1, 2]
    assert (memo.hits, memo.misses) == (1, 1)


async def test_another_version_or_other_arguments_miss(store: StateStore) -> None:
    memo = Memo(store, ttl_seconds=60)
    key = memo_key("minhash", 1, *ARGS)
    await memo.put(key, "v1")
    assert key.startswith("memo:minhash:v1:")
    others = [
        memo_key("minhash", 2, *ARGS),
        memo_key("other", 1, *ARGS),
        memo_key("minhash", 1, *ARGS[:-1]),
        memo_key("minhash", 1, "b" * 64, *ARGS[1:]),
    ]
    assert [await memo.get(k) for k in others] == [None] * 4
    assert (memo.hits, memo.misses) == (0, 4)


def test_keys_are_canonical() -> None:
    class Shingles(BaseModel):
        size: int
        num_perm: int

    assert memo_key("f", 1, {"x": 1, "y": 2}) == memo_key("f", 1, {"y": 2, "x": 1})
    assert memo_key("f", 1, Shingles(size=3, num_perm=128)) == memo_key(
        "f", 1, {"num_perm": 128, "size": 3}
    )
    assert memo_key("f", 1, 1) != memo_key("f", 1, "1")
    with pytest.raises(TypeError, match="is not JSON"):
        memo_key("f", 1, {1, 2})  # a set has no stable order


class RecordingStore(StateStore):
    """`inner`, recording the TTL of every put: what the memo asks the store to keep."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.ttls: dict[str, float | None] = {}

    async def get(self, key: str) -> bytes | None:
        return await self.inner.get(key)

    async def put(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        self.ttls[key] = ttl_seconds
        await self.inner.put(key, value, ttl_seconds=ttl_seconds)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)


async def test_entries_are_stored_with_the_ttl(store: StateStore) -> None:
    recording = RecordingStore(store)
    memo = Memo(recording, ttl_seconds=3600)
    await memo.put("memo:k", 1)

    @memoize(memo, name="one", version=1)
    async def one() -> int:
        return 1

    await one()
    assert set(recording.ttls.values()) == {3600}
    assert len(recording.ttls) == 2
    assert await memo.get("memo:k") == 1  # (test_store.py checks the stores' expiry itself)


async def test_entries_expire_after_the_ttl(store: StateStore) -> None:
    memo = Memo(store, ttl_seconds=0.05)
    await memo.put("memo:k", 1)
    await asyncio.sleep(0.1)  # past the expiry: only ever longer on a slow machine, never shorter
    assert await memo.get("memo:k") is None


async def test_an_unreadable_entry_is_a_miss_with_a_warning(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    memo = Memo(store, ttl_seconds=60)
    await store.put("memo:bad", b"\xff not json")
    with caplog.at_level(logging.WARNING):
        assert await memo.get("memo:bad") is None
    assert "memo:bad" in caplog.text
    assert memo.misses == 1


async def test_an_entry_of_another_key_is_never_used(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Each entry holds the key it was stored under: another input's result copied (or
    moved, or written by a bug) over this key is a miss, logged once, and recomputed."""
    memo = Memo(store, ttl_seconds=60)
    mine, other = memo_key("minhash", 1, "a" * 64), memo_key("minhash", 1, "b" * 64)
    await memo.put(other, [9, 9, 9])
    await store.put(mine, await store.get(other) or b"")  # the other document's signature
    with caplog.at_level(logging.WARNING):
        assert await memo.lookup(mine) == (False, None)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert mine in warning.getMessage()
    assert "stored for another key" in warning.getMessage()
    assert await memo.get(other) == [9, 9, 9]  # where it belongs, it is a hit


class Stats(BaseModel):
    words: int = Field(ge=0)
    top: list[str] = Field(max_length=3)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({"words": -1, "top": []}, "greater than or equal to 0"),
        ({"words": 3, "top": ["a", "b", "c", "d"]}, "at most 3 items"),
        ({"top": []}, "Field required"),
        ([1, 2], "valid dictionary"),
    ],
)
async def test_a_value_that_fails_validation_is_a_miss_with_a_warning(
    store: StateStore, caplog: pytest.LogCaptureFixture, value: object, why: str
) -> None:
    """`validate` checks shape and ranges before use; what it refuses is recomputed."""
    memo = Memo(store, ttl_seconds=60)
    key = memo_key("stats", 1, "a" * 64)
    await memo.put(key, value)
    with caplog.at_level(logging.WARNING):
        assert await memo.get(key, Stats.model_validate) is None
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert key in warning.getMessage()
    assert why in warning.getMessage()
    await memo.put(key, {"words": 3, "top": ["a"]})
    assert await memo.get(key, Stats.model_validate) == Stats(words=3, top=["a"])
    assert (memo.hits, memo.misses) == (1, 1)


async def test_the_decorator_validates_and_recomputes_a_bad_entry(store: StateStore) -> None:
    memo = Memo(store, ttl_seconds=60)
    calls: list[str] = []

    @memoize(memo, name="stats", version=1, validate=Stats.model_validate)
    async def stats(text: str) -> Stats:
        calls.append(text)
        return Stats(words=len(text.split()), top=text.split()[:3])

    assert await stats("a b") == Stats(words=2, top=["a", "b"])  # a model, hit or miss
    assert await stats("a b") == Stats(words=2, top=["a", "b"])
    assert calls == ["a b"]
    key = memo_key("stats", 1, "a b")
    await store.put(key, b'{"key":"' + key.encode() + b'","value":{"words":-2,"top":[]}}')
    assert await stats("a b") == Stats(words=2, top=["a", "b"])  # recomputed, not used
    assert calls == ["a b", "a b"]


async def test_the_decorator_computes_each_call_once(store: StateStore) -> None:
    memo = Memo(store, ttl_seconds=60)
    calls: list[tuple[str, int]] = []

    @memoize(lambda: memo, name="shout", version=1)
    async def shout(text: str, times: int = 2) -> str | None:
        calls.append((text, times))
        return None if text == "" else (text.upper() + "!") * times

    assert await shout("hi") == "HI!HI!"
    assert await shout("hi") == "HI!HI!"
    assert await shout("hi", 2) == "HI!HI!"  # the same call, spelled differently
    assert await shout(text="hi", times=2) == "HI!HI!"
    assert await shout("hi", times=1) == "HI!"
    assert await shout("") is None
    assert await shout("") is None  # a None result is cached too
    assert calls == [("hi", 2), ("hi", 1), ("", 2)]
    assert (memo.hits, memo.misses) == (4, 3)


async def test_the_decorator_returns_what_a_hit_would(store: StateStore) -> None:
    @memoize(Memo(store, ttl_seconds=60), name="pair", version=1)
    async def pair(x: int) -> object:
        return (x, x)

    assert await pair(1) == [1, 1]  # a JSON round trip, on a miss as on a hit
    assert await pair(1) == [1, 1]


def test_the_decorator_wants_an_async_function(store: StateStore) -> None:
    def plain(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="not an async function"):
        memoize(Memo(store, ttl_seconds=60), name="plain", version=1)(plain)  # type: ignore[arg-type]


KEY_IN_A_PROCESS = textwrap.dedent(
    """
    from {{ cookiecutter.package_name }}.runtime.memo import memo_key
    print(memo_key("minhash", 1, "a" * 64, 128, 3, {"b": [1.5, None, True], "a": "é"}))
    """
)


def test_keys_are_the_same_in_other_processes() -> None:
    """The built-in hash() of a str differs per process; memo keys must not."""
    keys = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        child = subprocess.run(  # killed on the timeout, which only ends a broken test
            [sys.executable, "-c", KEY_IN_A_PROCESS],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert child.returncode == 0, child.stdout + child.stderr
        keys.add(child.stdout.strip())
    assert keys == {memo_key("minhash", 1, *ARGS)}


async def test_many_lookups_and_puts_in_one_call(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """`get_many` and `put_many` check entries exactly as `get` and `put` do."""
    memo = Memo(store, ttl_seconds=60)
    keys = [memo_key("f", 1, i) for i in range(4)]
    await memo.put_many({keys[0]: [0], keys[1]: [1], keys[2]: "not a list"})

    def as_list(value: object) -> list[int]:
        if not isinstance(value, list):
            raise ValueError("not a list")
        return value

    with caplog.at_level(logging.WARNING):
        assert await memo.get_many(keys, as_list) == [[0], [1], None, None]
    assert (memo.hits, memo.misses) == (2, 2)
    assert [r.getMessage() for r in caplog.records if keys[2] in r.getMessage()]
    await store.put(keys[3], await store.get(keys[0]) or b"")  # another key's entry
    assert await memo.get_many([keys[3]]) == [None]

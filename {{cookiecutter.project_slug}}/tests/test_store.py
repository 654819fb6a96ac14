"""The SQLite state store: values, JSON, expiry, and several processes at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.store import (
    SqliteStateStore,
    check_store_url,
    open_store,
)


async def test_put_get_delete(store: SqliteStateStore) -> None:
    assert await store.get("a") is None
    await store.put("a", b"\x00bytes\xff")
    assert await store.get("a") == b"\x00bytes\xff"
    await store.put("a", b"replaced")
    assert await store.get("a") == b"replaced"
    await store.delete("a")
    await store.delete("a")  # deleting a missing key is fine
    assert await store.get("a") is None


async def test_json_values(store: SqliteStateStore) -> None:
    await store.put_json("j", {"cursor": 3, "items": ["x", "y"]})
    assert await store.get_json("j") == {"cursor": 3, "items": ["x", "y"]}
    assert await store.get_json("missing") is None


async def test_expired_values_are_gone(store: SqliteStateStore) -> None:
    await store.put("short", b"1", ttl_seconds=0.05)
    await store.put("long", b"2", ttl_seconds=60)
    assert await store.get("short") == b"1"
    await asyncio.sleep(0.1)
    assert await store.get("short") is None
    assert await store.get("long") == b"2"


async def test_values_survive_reopening(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'nested' / 'state.db'}") as first:
        await first.put("k", b"v")
    async with open_store(f"sqlite:///{tmp_path / 'nested' / 'state.db'}") as second:
        assert await second.get("k") == b"v"


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from {{ cookiecutter.package_name }}.store import SqliteStateStore

    async def main(path, prefix):
        async with SqliteStateStore(path) as store:
            for i in range(200):
                await store.put(f"{prefix}-{i}", str(i).encode())
                await store.put("shared", prefix.encode())

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_several_processes_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name]) for name in ("a", "b")
    ]
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    async with SqliteStateStore(path) as store:
        for name in ("a", "b"):
            values = [await store.get(f"{name}-{i}") for i in range(200)]
            assert values == [str(i).encode() for i in range(200)]
        assert await store.get("shared") in (b"a", b"b")


@pytest.mark.parametrize(
    "url", ["redis://localhost", "sqlite://", "sqlite:///", "state.db", "sqlite:relative.db"]
)
def test_unsupported_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="expected sqlite:///"):
        check_store_url(url)
    with pytest.raises(ValueError, match="state store URL"):
        open_store(url)

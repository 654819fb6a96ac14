"""The state store: where activities keep bodies and intermediate results.

Activities must not send large values through the workflow history (every payload is
stored in it, and histories have hard size limits), so they put them here and pass
small keys around instead. The interface is deliberately tiny (get, put, delete by
string key) so that another backend is a page of code.

`SqliteStateStore` is the embedded default: one file, no server, and safe for several
worker processes on one host (SQLite's WAL mode and a busy timeout serialise writers).

    store = open_store("sqlite:///.state/state.db")
    await store.put("body:ab12...", b"...")
    body = await store.get("body:ab12...")   # None if missing or expired
    await store.close()
"""

from __future__ import annotations

import abc
import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")


class StateStore(abc.ABC):
    """Async key-value store of bytes, with JSON helpers; values may expire."""

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value stored under `key`, or None if there is none (or it expired)."""

    @abc.abstractmethod
    async def put(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        """Store `value` under `key` atomically, replacing any previous value."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key is not an error."""

    async def close(self) -> None:  # noqa: B027 (optional: only stores with connections)
        """Release connections; the store must not be used afterwards."""

    async def get_json(self, key: str) -> Any | None:
        """The JSON value under `key`, decoded, or None."""
        raw = await self.get(key)
        return None if raw is None else json.loads(raw)

    async def put_json(self, key: str, value: Any, *, ttl_seconds: float | None = None) -> None:
        """Store a JSON-serialisable value under `key`."""
        await self.put(key, json.dumps(value).encode(), ttl_seconds=ttl_seconds)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class SqliteStateStore(StateStore):
    """A `StateStore` in one SQLite file, shared safely by the processes of one host.

    sqlite3 is blocking, so every call runs on one dedicated thread: the event loop
    never waits on disk, and the connection is only ever used from the thread that made it.
    """

    def __init__(self, path: str | Path, *, busy_timeout_seconds: float = 30.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS kv ("
                " key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL)"
            )
            conn.execute("DELETE FROM kv WHERE expires_at <= ?", (time.time(),))
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))

    async def get(self, key: str) -> bytes | None:
        def _get(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                (key, time.time()),
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._run(_get)

    async def put(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        expires_at = None if ttl_seconds is None else time.time() + ttl_seconds

        def _put(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
                " expires_at = excluded.expires_at",
                (key, value, expires_at),
            )

        await self._run(_put)

    async def delete(self, key: str) -> None:
        await self._run(lambda conn: conn.execute("DELETE FROM kv WHERE key = ?", (key,)))

    async def close(self) -> None:
        def _close(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None

        if self._conn is not None:
            await self._run(_close)
        self._executor.shutdown(wait=True)


_EXPECTED_URL = "expected sqlite:///relative/path.db or sqlite:////absolute/path.db"


def _sqlite_path(url: str) -> str | None:
    scheme, sep, rest = url.partition("://")
    if scheme == "sqlite" and sep and rest.startswith("/") and rest.strip("/"):
        return rest[1:]
    return None


def check_store_url(url: str) -> str:
    """Return `url` if a store can be opened from it, else raise ValueError saying why."""
    if _sqlite_path(url) is None:
        raise ValueError(_EXPECTED_URL)
    return url


def open_store(url: str) -> StateStore:
    """The store a URL names: `sqlite:///relative.db` or `sqlite:////absolute.db`."""
    path = _sqlite_path(url)
    if path is None:
        raise ValueError(f"state store URL {url!r}: {_EXPECTED_URL}")
    return SqliteStateStore(path)

"""The state store: where activities keep bodies and intermediate results.

Activities must not send large values through the workflow history (every payload is
stored in it, and histories have hard size limits), so they put them here and pass
small keys around instead. The interface is deliberately tiny (get, put, delete by
string key) so that another backend is a page of code.

Two rules keep a shared store safe. Every key is stored under the service's `key_prefix`
(`<prefix>:<key>`; the setting `STORE_KEY_PREFIX`, the project's name by default), so two
services on one Redis never read or overwrite each other's values. Every value expires:
a put without `ttl_seconds` gets the store's `ttl_seconds` (the setting
`STORE_TTL_SECONDS`), so the store holds what recent runs need and never only grows.
What a store gives back is still only bytes someone wrote: check it before use
(`get_verified` for a body stored under its SHA-256; `Memo` and `Checkpoint` check theirs).

`SqliteStateStore` is the embedded default: one file, no server, and safe for several
worker processes on one host (SQLite's WAL mode and a busy timeout serialise writers).
`RedisStateStore` is the shared one: workers on any number of hosts see the same values.
The URL chooses:

    store = open_store("sqlite:///.state/state.db", key_prefix="invoices", ttl_seconds=86400)
    store = open_store("rediss://redis.internal:6380/0", password=SecretStr("..."))
    await store.put("body:ab12...", b"...")          # stored as invoices:body:ab12...
    body = await store.get("body:ab12...")           # None if missing or expired
    body = await store.get_verified("body:ab12...", "ab12...")  # None if it is not that body
    a, b = await store.get_many(["a", "b"])          # one round trip for many keys
    await store.put_many({"a": b"1", "b": b"2"})     # one round trip, all or none
    await store.close()

Per-item work costs a round trip each (a thread hop and a transaction for SQLite, a network
round trip for Redis): an activity that handles many small values reads and writes them in
batches (`get_many`, `put_many`, `BufferedPuts`), which the scale run measured as the
cheapest change per document (`make bench`).

A URL never holds a password (it ends up in logs and error messages): `check_store_url`
rejects one that does, and the password comes separately, as a `SecretStr`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import json
import logging
import math
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

if TYPE_CHECKING:  # annotations only: this module needs nothing beyond the standard library
    import redis.asyncio
    from pydantic import SecretStr

T = TypeVar("T")

DEFAULT_TTL_SECONDS = 7 * 24 * 3600
"""How long a value put without a TTL of its own is kept (`open_store`'s default)."""
KEY_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""A key prefix: letters, digits, `.`, `_`, `-`; no `:`, which separates it from the key."""

logger = logging.getLogger(__name__)


class StateStoreError(Exception):
    """The store could not be reached, or refused us (a Redis that is down, a bad password,
    a SQLite file that cannot be created or written)."""


class StateStore(abc.ABC):
    """Async key-value store of bytes, with JSON helpers; every value expires.

    The backends derive from `PrefixedStore`, which adds the key prefix and the default TTL
    so that no caller can forget either; a wrapper around another store (a test's gate, a
    recorder) derives from this class and implements `get`, `put` and `delete`.
    """

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value stored under `key`, or None if there is none (or it expired)."""

    @abc.abstractmethod
    async def put(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        """Store `value` under `key` atomically, replacing any previous value; it expires after
        `ttl_seconds`, or the store's own TTL when that is None."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key is not an error."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values under `keys`, in their order (None where there is none): one round trip
        in the backends. This default asks `get` for each, so a wrapper sees every key."""
        return [await self.get(key) for key in keys]

    async def put_many(
        self, items: Mapping[str, bytes], *, ttl_seconds: float | None = None
    ) -> None:
        """Store every value of `items` under its key, as `put` does: in the backends, in one
        round trip and atomically (all or none). This default calls `put` for each."""
        for key, value in items.items():
            await self.put(key, value, ttl_seconds=ttl_seconds)

    async def get_verified(self, key: str, sha256: str) -> bytes | None:
        """The value under `key` if its SHA-256 is `sha256` (a body stored by its hash, the
        claim check); None if it is missing or is not that content, which is logged once
        as a warning. Treat None as a miss: fetch or compute it again, never use the value."""
        return _verified(key, await self.get(key), sha256)

    async def get_verified_many(self, claims: Sequence[tuple[str, str]]) -> list[bytes | None]:
        """`get_verified` of each (key, sha256) of `claims`, in one `get_many`."""
        values = await self.get_many([key for key, _ in claims])
        return [_verified(key, v, sha256) for (key, sha256), v in zip(claims, values, strict=True)]

    async def close(self) -> None:  # noqa: B027 (optional: a wrapper holds nothing to release)
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


def _verified(key: str, value: bytes | None, sha256: str) -> bytes | None:
    if value is None or hashlib.sha256(value).hexdigest() == sha256.lower():
        return value
    logger.warning(
        "state store value %s ignored: its SHA-256 is not %s (altered or corrupt);"
        " it is fetched or computed again",
        key,
        sha256,
    )
    return None


class BufferedPuts:
    """Puts gathered and written with `put_many` once `max_items` or `max_bytes` are waiting,
    and at the end of the `async with` block (not when it ends in an error: nothing that
    failed needs its values kept, and a retry writes them again).

        async with BufferedPuts(store, max_items=64) as puts:
            for key, body in downloads:
                await puts.put(key, body)   # written in batches of 64
        # every value is stored here

    A value is only readable once written: keep values that are read back out of it, or
    flush first (`await puts.flush()`).
    """

    def __init__(
        self,
        store: StateStore,
        *,
        max_items: int = 64,
        max_bytes: int = 4 * 1024 * 1024,
        ttl_seconds: float | None = None,
    ) -> None:
        self.store = store
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self._waiting: dict[str, bytes] = {}
        self._bytes = 0

    async def put(self, key: str, value: bytes) -> None:
        """Add a value; write the batch now if it is full."""
        self._bytes += len(value) - len(self._waiting.get(key, b""))
        self._waiting[key] = value
        if len(self._waiting) >= self.max_items or self._bytes >= self.max_bytes:
            await self.flush()

    async def flush(self) -> None:
        """Write every waiting value (one `put_many`)."""
        if self._waiting:
            items, self._waiting, self._bytes = self._waiting, {}, 0
            await self.store.put_many(items, ttl_seconds=self.ttl_seconds)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.flush()


class PrefixedStore(StateStore):
    """A backend's base: every key is stored as `<key_prefix>:<key>`, and a put without a
    TTL of its own gets `ttl_seconds`. A backend implements `_get`, `_put` and `_delete`
    on those full keys."""

    def __init__(self, *, key_prefix: str = "", ttl_seconds: float | None = None) -> None:
        if key_prefix and not KEY_PREFIX_PATTERN.fullmatch(key_prefix):
            raise ValueError(
                f"key prefix {key_prefix!r}: letters, digits, '.', '_' and '-' only (at most 100)"
            )
        if ttl_seconds is not None and not ttl_seconds > 0:
            raise ValueError(f"ttl_seconds must be positive, not {ttl_seconds}")
        self.key_prefix = key_prefix
        self.ttl_seconds = ttl_seconds

    def full_key(self, key: str) -> str:
        """The key as the backend stores it: `<prefix>:<key>` (just `key` without a prefix)."""
        return f"{self.key_prefix}:{key}" if self.key_prefix else key

    async def get(self, key: str) -> bytes | None:
        """The value stored under `key`, or None if there is none (or it expired)."""
        return await self._get(self.full_key(key))

    async def put(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        """Store `value` under `key` atomically, replacing any previous value; it expires after
        `ttl_seconds`, or the store's own TTL when that is None."""
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        await self._put(self.full_key(key), value, ttl_seconds=ttl)

    async def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key is not an error."""
        await self._delete(self.full_key(key))

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self._get_many([self.full_key(key) for key in keys])

    async def put_many(
        self, items: Mapping[str, bytes], *, ttl_seconds: float | None = None
    ) -> None:
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        full = {self.full_key(key): value for key, value in items.items()}
        if full:
            await self._put_many(full, ttl_seconds=ttl)

    async def _get_many(self, keys: list[str]) -> list[bytes | None]:
        """The values under the full keys `keys`, in order (a backend does it in one trip)."""
        return [await self._get(key) for key in keys]

    async def _put_many(self, items: dict[str, bytes], *, ttl_seconds: float | None) -> None:
        """Store every value under its full key, atomically (a backend does it in one trip)."""
        for key, value in items.items():
            await self._put(key, value, ttl_seconds=ttl_seconds)

    @abc.abstractmethod
    async def _get(self, key: str) -> bytes | None:
        """The value under the full key `key`, or None."""

    @abc.abstractmethod
    async def _put(self, key: str, value: bytes, *, ttl_seconds: float | None) -> None:
        """Store `value` under the full key `key`, expiring after `ttl_seconds` (None: never)."""

    @abc.abstractmethod
    async def _delete(self, key: str) -> None:
        """Remove the full key `key`."""


SQLITE_KEYS_PER_QUERY = 500  # under SQLite's oldest limit of 999 parameters per statement


class SqliteStateStore(PrefixedStore):
    """A `StateStore` in one SQLite file, shared safely by the processes of one host.

    sqlite3 is blocking, so every call runs on one dedicated thread: the event loop
    never waits on disk, and the connection is only ever used from the thread that made it.
    Expired rows are never read; they are deleted when the file is opened and then at most
    every `purge_every_seconds` by a put, so the file does not only grow.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_seconds: float = 30.0,
        key_prefix: str = "",
        ttl_seconds: float | None = None,
        purge_every_seconds: float = 600.0,
    ) -> None:
        super().__init__(key_prefix=key_prefix, ttl_seconds=ttl_seconds)
        self.path = Path(path)
        self._busy_timeout = busy_timeout_seconds
        self._purge_every = purge_every_seconds
        self._last_purge = 0.0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
            try:
                self._use_wal(conn)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS kv ("
                    " key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL)"
                )
                self._purge(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _purge(self, conn: sqlite3.Connection) -> None:
        """Delete the expired rows (reads skip them anyway): this is what bounds the file."""
        conn.execute("DELETE FROM kv WHERE expires_at <= ?", (time.time(),))
        self._last_purge = time.monotonic()

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL mode. Two processes opening a new file at once can find it
        locked, and SQLite does not wait on its busy timeout for this pragma: retry here."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` on the store's thread; a file that cannot be created, opened or written is
        one short `StateStoreError` naming the path (not a traceback from sqlite3)."""

        def call() -> T:
            try:
                return fn(self._connection())
            except (sqlite3.Error, OSError) as exc:
                raise StateStoreError(f"SQLite state store {self.path}: {exc}") from None

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, call)

    async def _get(self, key: str) -> bytes | None:
        def get(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                (key, time.time()),
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._run(get)

    async def _put(self, key: str, value: bytes, *, ttl_seconds: float | None) -> None:
        await self._put_many({key: value}, ttl_seconds=ttl_seconds)

    async def _get_many(self, keys: list[str]) -> list[bytes | None]:
        def get_many(conn: sqlite3.Connection) -> list[bytes | None]:
            found: dict[str, bytes] = {}
            now = time.time()
            for start in range(0, len(keys), SQLITE_KEYS_PER_QUERY):
                part = keys[start : start + SQLITE_KEYS_PER_QUERY]
                marks = ",".join("?" * len(part))  # only placeholders go into the SQL
                rows = conn.execute(
                    f"SELECT key, value FROM kv WHERE key IN ({marks})"  # noqa: S608
                    " AND (expires_at IS NULL OR expires_at > ?)",
                    (*part, now),
                )
                found.update((key, bytes(value)) for key, value in rows)
            return [found.get(key) for key in keys]

        return await self._run(get_many)

    async def _put_many(self, items: dict[str, bytes], *, ttl_seconds: float | None) -> None:
        expires_at = None if ttl_seconds is None else time.time() + ttl_seconds

        def put_many(conn: sqlite3.Connection) -> None:
            with conn:  # one transaction: every value or none
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
                    " expires_at = excluded.expires_at",
                    [(key, value, expires_at) for key, value in items.items()],
                )
            if time.monotonic() - self._last_purge >= self._purge_every:
                self._purge(conn)

        await self._run(put_many)

    async def _delete(self, key: str) -> None:
        await self._run(lambda conn: conn.execute("DELETE FROM kv WHERE key = ?", (key,)))

    async def close(self) -> None:
        def _close(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None

        if self._conn is not None:
            await self._run(_close)
        self._executor.shutdown(wait=True)


# A command that gets no reply in this time fails (then is retried): a hung connection must
# not stall an activity, which would keep heartbeating while making no progress.
REDIS_SOCKET_TIMEOUT_SECONDS = 5.0
# Retries of a failed command, after 0.1, 0.2 and 0.4 s: a blip, not an outage (Temporal's).
REDIS_RETRIES = 3


class RedisStateStore(PrefixedStore):
    """A `StateStore` in one Redis database, shared by every worker that can reach it.

    A put is one `SET key value [PX ms]`. Redis runs each command whole, so a reader sees
    the old value or the new one, never part of either: a checkpoint save is atomic here as
    in SQLite, and its expiry is set by the same command (no moment without a TTL).

    Every operation is idempotent, so the client may safely retry one: it does, a few times
    within about a second, which covers a dropped connection. A longer outage raises
    `StateStoreError` from the call; the activity fails and Temporal retries it with its own
    backoff until Redis is back. Whatever the store holds must survive a Redis restart
    (bodies, signatures): run Redis with persistence (AOF) or a managed, replicated one.
    """

    def __init__(
        self,
        url: str,
        *,
        password: SecretStr | None = None,
        key_prefix: str = "",
        ttl_seconds: float | None = None,
    ) -> None:
        super().__init__(key_prefix=key_prefix, ttl_seconds=ttl_seconds)
        # Imported here, not at the top: redis.asyncio takes ~0.3 s to import, which every
        # short CLI call and SQLite-only process would pay for nothing.
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        target = _redis_target(url)
        self.url = url  # safe to log: check_store_url rejects URLs with a password
        self._unreachable = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        tls: dict[str, Any] = {}
        if target.tls:  # certificates and host names are always verified
            tls = {"ssl": True, "ssl_check_hostname": True, "ssl_ca_certs": target.ca_certs}
        self._client: redis.asyncio.Redis = redis.asyncio.Redis(
            host=target.host,
            port=target.port,
            db=target.db,
            username=target.username,
            password=None if password is None else password.get_secret_value(),
            socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
            socket_keepalive=True,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), REDIS_RETRIES),
            # redis-py 5 retries only the errors listed here (6 and later, Retry's too).
            retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
            **tls,
        )

    @contextlib.contextmanager
    def _compact_errors(self) -> Iterator[None]:
        """Redis's connection errors as one short `StateStoreError`.

        redis-py chains the error of every try, with long tracebacks. Temporal keeps an
        attempt's failure only up to a size limit: beyond it, the UI and `describe` show
        "Failure exceeds size limit." instead of the reason.
        """
        try:
            yield
        except self._unreachable as exc:
            raise StateStoreError(f"Redis state store {self.url}: {exc}") from None

    async def _get(self, key: str) -> bytes | None:
        with self._compact_errors():
            value = await self._client.get(key)
        return None if value is None else bytes(value)

    async def _put(self, key: str, value: bytes, *, ttl_seconds: float | None) -> None:
        # PX takes whole milliseconds, at least 1; without it, SET also drops an old TTL.
        px = None if ttl_seconds is None else max(1, math.ceil(ttl_seconds * 1000))
        with self._compact_errors():
            await self._client.set(key, value, px=px)

    async def _delete(self, key: str) -> None:
        with self._compact_errors():
            await self._client.delete(key)

    async def _get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        with self._compact_errors():
            values = await self._client.mget(keys)
        return [None if value is None else bytes(value) for value in values]

    async def _put_many(self, items: dict[str, bytes], *, ttl_seconds: float | None) -> None:
        px = None if ttl_seconds is None else max(1, math.ceil(ttl_seconds * 1000))
        with self._compact_errors():
            async with self._client.pipeline(transaction=True) as pipe:  # MULTI ... EXEC
                for key, value in items.items():
                    pipe.set(key, value, px=px)
                await pipe.execute()

    async def close(self) -> None:
        await self._client.aclose()


REDIS_SCHEMES = ("redis", "rediss")
_EXPECTED_URL = (
    "expected sqlite:///relative/path.db, sqlite:////absolute/path.db,"
    " redis://[user@]host[:port][/db] or rediss://[user@]host[:port][/db][?ssl_ca_certs=ca.pem]"
)
_CREDENTIALS_IN_URL = (
    "the URL holds a password, which would be logged with it:"
    " give it in the STATE_STORE_PASSWORD setting instead"
)


def _sqlite_path(url: str) -> str | None:
    scheme, sep, rest = url.partition("://")
    if scheme == "sqlite" and sep and rest.startswith("/") and rest.strip("/"):
        return rest[1:]
    return None


@dataclass(frozen=True)
class _RedisTarget:
    host: str
    port: int
    db: int
    username: str | None
    tls: bool
    ca_certs: str | None  # a PEM file of the CA to trust instead of the system's (TLS only)


def _redis_target(url: str) -> _RedisTarget:
    """What a `redis://` or `rediss://` URL names, or ValueError saying what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError:  # urllib's message may quote a part of the URL
        raise ValueError("not a valid URL: a bad port or [IPv6] address") from None
    if parts.scheme not in REDIS_SCHEMES or not url.startswith(f"{parts.scheme}://"):
        raise ValueError(_EXPECTED_URL)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if parts.password is not None or any("pass" in name.lower() for name, _ in query):
        raise ValueError(_CREDENTIALS_IN_URL)
    if not parts.hostname:
        raise ValueError("no host, as in redis://localhost:6379/0")
    db = parts.path.removeprefix("/")
    if not (db == "" or (db.isascii() and db.isdigit())):
        raise ValueError("the database must be a number, as in redis://host:6379/0")
    if parts.fragment:
        raise ValueError("unexpected #fragment")
    options = dict(query)
    for name in options:
        if name != "ssl_ca_certs" or parts.scheme != "rediss":
            raise ValueError(f"unknown parameter {name!r} (only ssl_ca_certs, with rediss://)")
    return _RedisTarget(
        host=parts.hostname,
        port=port,
        db=int(db or 0),
        username=unquote(parts.username) if parts.username else None,
        tls=parts.scheme == "rediss",
        ca_certs=options.get("ssl_ca_certs") or None,
    )


def redact_url(url: str) -> str:
    """`url` with anything that may be a password (after `user:`, `pass...=`) replaced by ***."""
    url = re.sub(r"^([^:/?#]*://[^:/?#@]*:).*@", r"\1***@", url, flags=re.DOTALL)
    return re.sub(r"([?&][^=&#]*pass[^=&#]*=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)


def redis_host(url: str) -> str | None:
    """The host a valid `redis://` or `rediss://` URL names; None for any other URL."""
    try:
        return _redis_target(url).host if takes_password(url) else None
    except ValueError:
        return None


def takes_password(url: str) -> bool:
    """Whether the store at `url` can use a password (Redis can, SQLite cannot)."""
    return url.partition("://")[0] in REDIS_SCHEMES


def check_store_url(url: str) -> str:
    """Return `url` if a store can be opened from it, else raise ValueError saying why.

    The message never quotes the URL, which may hold a password (see `redact_url`).
    """
    if takes_password(url):
        _redis_target(url)
    elif _sqlite_path(url) is None:
        raise ValueError(_EXPECTED_URL)
    return url


def open_store(
    url: str,
    *,
    password: SecretStr | None = None,
    key_prefix: str = "",
    ttl_seconds: float | None = DEFAULT_TTL_SECONDS,
) -> StateStore:
    """The store a URL names (see `_EXPECTED_URL`); `password` is for Redis only.

    Every key is stored as `<key_prefix>:<key>`, and a put without a TTL of its own gets
    `ttl_seconds`. A service opens its store with its settings (`RuntimeSettings.open_store`),
    which give both. Nothing connects yet: a Redis that is down makes the first call fail.
    """
    try:
        check_store_url(url)
    except ValueError as exc:
        raise ValueError(f"state store URL {redact_url(url)!r}: {exc}") from None
    if takes_password(url):
        return RedisStateStore(
            url, password=password, key_prefix=key_prefix, ttl_seconds=ttl_seconds
        )
    if password is not None:
        raise ValueError("a SQLite state store takes no password")
    return SqliteStateStore(str(_sqlite_path(url)), key_prefix=key_prefix, ttl_seconds=ttl_seconds)

"""The state stores, SQLite and Redis: values, JSON, expiry, key prefixes, checked reads,
several processes, URLs, secrets, unusable stores.

Tests taking `store` or `store_url` run once per backend (see conftest.py), against a real
SQLite file and a real `redis-server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import sqlite3
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from {{ cookiecutter.package_name }}.runtime.store import (
    DEFAULT_TTL_SECONDS,
    BufferedPuts,
    RedisStateStore,
    SqliteStateStore,
    StateStore,
    StateStoreError,
    check_store_url,
    open_store,
    redact_url,
)

from ..conftest import run_process
from ..toolkit.redis_server import RedisServer, Tls

# Redis keeps expiries in whole milliseconds; the clocks the test and Redis read are not the
# same one. Not a time the code is given: a tolerance for rounding only.
ROUNDING = 0.002


async def test_put_get_delete(store: StateStore) -> None:
    assert await store.get("a") is None
    await store.put("a", b"\x00bytes\xff")
    assert await store.get("a") == b"\x00bytes\xff"
    await store.put("a", b"replaced")
    assert await store.get("a") == b"replaced"
    await store.delete("a")
    await store.delete("a")  # deleting a missing key is fine
    assert await store.get("a") is None


async def test_json_values(store: StateStore) -> None:
    await store.put_json("j", {"cursor": 3, "items": ["x", "y"]})
    assert await store.get_json("j") == {"cursor": 3, "items": ["x", "y"]}
    assert await store.get_json("missing") is None


def remaining_ttl(url: str, key: str) -> float | None:
    """Seconds until `key` expires, as the store itself holds it (SQLite's `expires_at`,
    Redis's PTTL), read directly; None if it never expires."""
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            row = db.execute("SELECT expires_at FROM kv WHERE key = ?", (key,)).fetchone()
        assert row is not None, f"{key} is not stored"
        return None if row[0] is None else float(row[0]) - time.time()
    with redis.Redis.from_url(url) as client:
        pttl = int(client.pttl(key))
    assert pttl != -2, f"{key} is not stored"
    return None if pttl == -1 else pttl / 1000


async def test_the_ttl_is_stored_with_the_value(store_url: str) -> None:
    """The expiry the store holds is the TTL, counted from the put. The bound below is the
    time the test itself took around the put, so no speed makes it pass or fail."""
    async with open_store(store_url) as store:
        started = time.monotonic()
        await store.put("long", b"2", ttl_seconds=60)
        await store.put("replaced", b"3", ttl_seconds=60)
        await store.put("replaced", b"4")  # a put without a TTL gets the store's TTL
        remaining = remaining_ttl(store_url, "long")
        default = remaining_ttl(store_url, "replaced")
        elapsed = time.monotonic() - started
        assert remaining is not None
        assert 60 - elapsed - ROUNDING <= remaining <= 60
        assert default is not None
        assert DEFAULT_TTL_SECONDS - elapsed - ROUNDING <= default <= DEFAULT_TTL_SECONDS
        assert await store.get("long") == b"2"


async def test_expired_values_are_gone(store: StateStore) -> None:
    await store.put("short", b"1", ttl_seconds=0.05)
    await store.put("long", b"2", ttl_seconds=60)
    await store.put("replaced", b"3", ttl_seconds=0.05)
    await store.put("replaced", b"4")  # a put without a TTL gets the store's (days)
    await asyncio.sleep(0.1)  # past the expiry: only ever longer on a slow machine, never shorter
    assert await store.get("short") is None
    assert await store.get("long") == b"2"
    assert await store.get("replaced") == b"4"


async def test_every_value_expires_with_the_store_ttl(store_url: str) -> None:
    """A put without a TTL of its own gets the store's: nothing is kept for good unless the
    store is opened with `ttl_seconds=None` on purpose."""
    async with open_store(store_url, ttl_seconds=30) as store:
        started = time.monotonic()
        await store.put("k", b"v")
        remaining = remaining_ttl(store_url, "k")
        assert remaining is not None
        assert 30 - (time.monotonic() - started) - ROUNDING <= remaining <= 30
    async with open_store(store_url, ttl_seconds=None) as store:
        await store.put("forever", b"v")
        assert remaining_ttl(store_url, "forever") is None
    with pytest.raises(ValueError, match="ttl_seconds must be positive"):
        open_store(store_url, ttl_seconds=0)


async def test_two_services_on_one_store_never_see_each_others_keys(store_url: str) -> None:
    """Each key is stored as `<prefix>:<key>`: the same key of two services (or two
    environments) sharing one Redis, or one SQLite file, is two values."""
    async with (
        open_store(store_url, key_prefix="invoices") as invoices,
        open_store(store_url, key_prefix="crawler") as crawler,
    ):
        await invoices.put("body:abc", b"an invoice")
        await crawler.put("body:abc", b"a page")
        assert await invoices.get("body:abc") == b"an invoice"
        assert await crawler.get("body:abc") == b"a page"
        await crawler.delete("body:abc")
        assert await crawler.get("body:abc") is None
        assert await invoices.get("body:abc") == b"an invoice"
        # As the backend holds it: under the prefixed key, with its TTL.
        assert remaining_ttl(store_url, "invoices:body:abc") is not None
        async with open_store(store_url) as unprefixed:
            assert await unprefixed.get("body:abc") is None
            assert await unprefixed.get("invoices:body:abc") == b"an invoice"


@pytest.mark.parametrize("prefix", ["a:b", "with space", "-leading", "x" * 101, "é"])
def test_a_bad_key_prefix_is_refused(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ValueError, match="key prefix"):
        open_store(f"sqlite:///{tmp_path / 's.db'}", key_prefix=prefix)


async def test_a_body_is_checked_against_its_sha256_on_read(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """`get_verified`: the claim check's body only if it is that content; anything else is a
    miss, logged once, and never returned."""
    body = b"the real body"
    sha256 = hashlib.sha256(body).hexdigest()
    await store.put(f"body:{sha256}", body)
    assert await store.get_verified(f"body:{sha256}", sha256) == body
    assert await store.get_verified("body:missing", sha256) is None
    assert not caplog.records
    await store.put(f"body:{sha256}", b"another document altogether")  # poisoned
    with caplog.at_level(logging.WARNING):
        assert await store.get_verified(f"body:{sha256}", sha256) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"body:{sha256}" in warnings[0].getMessage()
    assert "SHA-256" in warnings[0].getMessage()


def sqlite_keys(path: Path) -> list[str]:
    """Every row of a SQLite store, expired or not, read directly."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return sorted(row[0] for row in db.execute("SELECT key FROM kv"))


async def test_sqlite_purges_expired_rows_on_open_and_while_it_runs(tmp_path: Path) -> None:
    """Reads skip expired rows; deleting them is what keeps the file from only growing:
    when the store is opened, and by a put once `purge_every_seconds` have passed."""
    path = tmp_path / "state.db"
    async with SqliteStateStore(path) as store:
        await store.put("short", b"1", ttl_seconds=0.01)
        await store.put("kept", b"2", ttl_seconds=60)
        await asyncio.sleep(0.05)  # past the expiry: only ever longer, never shorter
        assert sqlite_keys(path) == ["kept", "short"]  # expired, not yet deleted
    async with SqliteStateStore(path, purge_every_seconds=0) as store:
        assert await store.get("kept") == b"2"  # opening purged the expired row
        assert sqlite_keys(path) == ["kept"]
        await store.put("short", b"1", ttl_seconds=0.01)
        await asyncio.sleep(0.05)
        await store.put("next", b"3", ttl_seconds=60)  # this put purges
        assert sqlite_keys(path) == ["kept", "next"]


@pytest.mark.parametrize("where", ["under a file", "a folder"])
async def test_an_unusable_sqlite_path_is_one_short_error(tmp_path: Path, where: str) -> None:
    """A path that cannot be a SQLite file fails the first call with `StateStoreError`
    naming the path (what `run` prints as its one line), not a traceback from sqlite3."""
    (tmp_path / "file").write_text("not a folder")
    path = tmp_path / "file" / "state.db" if where == "under a file" else tmp_path
    async with SqliteStateStore(path) as store:
        with pytest.raises(StateStoreError, match=f"SQLite state store {re.escape(str(path))}: "):
            await store.put("k", b"v")


async def test_values_survive_reopening(store_url: str) -> None:
    async with open_store(store_url) as first:
        await first.put("k", b"v")
    async with open_store(store_url) as second:
        assert await second.get("k") == b"v"


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from {{ cookiecutter.package_name }}.runtime.store import open_store

    async def main(url, prefix):
        async with open_store(url) as store:
            for i in range(200):
                await store.put(f"{prefix}-{i}", str(i).encode())
                await store.put("shared", prefix.encode())

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_several_processes_share_one_store(store_url: str) -> None:
    # run_process kills each writer however the test ends (the TaskGroup cancels the other
    # if one fails), and returns what it printed.
    async with asyncio.TaskGroup() as group:
        writers = [
            group.create_task(run_process(sys.executable, "-c", WRITER, store_url, name))
            for name in ("a", "b")
        ]
    for writer in writers:
        returncode, output = writer.result()
        assert returncode == 0, output
    async with open_store(store_url) as store:
        for name in ("a", "b"):
            values = [await store.get(f"{name}-{i}") for i in range(200)]
            assert values == [str(i).encode() for i in range(200)]
        assert await store.get("shared") in (b"a", b"b")


async def test_redis_expiry_is_set_on_the_server_by_the_same_command(
    redis_server: RedisServer, redis_url: str
) -> None:
    """`SET ... PX`: Redis itself expires the key, and it never exists without its TTL."""
    async with open_store(redis_url) as store:
        started = time.monotonic()
        await store.put("k", b"v", ttl_seconds=60)
        with redis_server.client() as direct:
            pttl = direct.pttl("k")
            elapsed_ms = (time.monotonic() - started) * 1000
            # The bound is the time the test took around it: no speed passes or fails it.
            assert 60_000 - elapsed_ms - ROUNDING * 1000 <= pttl <= 60_000
            await store.put("k", b"v", ttl_seconds=0.0001)  # rounds up to 1 ms, not to "never"
            assert direct.pttl("k") in (-2, 0, 1)  # gone, or at most 1 ms left; never -1 (no TTL)
            await asyncio.sleep(0.01)  # past the expiry: only ever longer, never shorter
            assert direct.exists("k") == 0


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///relative.db",
        "sqlite:////absolute/path.db",
        "redis://localhost",
        "redis://10.0.0.5:6380/3",
        "redis://[::1]:6379/0",
        "redis://svc-user@redis.internal:6379/0",
        "rediss://redis.example.com:6380/1",
        "rediss://redis.example.com/0?ssl_ca_certs=/etc/ssl/private-ca.pem",
    ],
)
async def test_supported_urls(url: str) -> None:
    assert check_store_url(url) == url
    async with open_store(url) as store:  # nothing connects until the first call
        kind = SqliteStateStore if url.startswith("sqlite") else RedisStateStore
        assert isinstance(store, kind)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("postgres://db/state", "expected sqlite:///"),
        ("sqlite://", "expected sqlite:///"),
        ("sqlite:///", "expected sqlite:///"),
        ("state.db", "expected sqlite:///"),
        ("sqlite:relative.db", "expected sqlite:///"),
        ("redis://", "no host"),
        ("redis://localhost:port/0", "not a valid URL"),
        ("redis://localhost:70000/0", "not a valid URL"),
        ("redis://localhost/zero", "database must be a number"),
        ("redis://localhost/0?socket_timeout=1", "unknown parameter 'socket_timeout'"),
        ("redis://localhost/0?ssl_ca_certs=ca.pem", "only ssl_ca_certs, with rediss://"),
        ("redis://localhost/0#x", "unexpected #fragment"),
    ],
)
def test_unsupported_urls_are_rejected(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_store_url(url)
    with pytest.raises(ValueError, match="state store URL"):
        open_store(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://svc:hunter2@host/0", "rediss://svc:***@host/0"),
        ("redis://svc:hunter2:with@signs@host/0", "redis://svc:***@host/0"),
        ("redis://host/0?password=hunter2", "redis://host/0?password=***"),
        ("redis://host/0?db=1&Passwd=hunter2&x=1", "redis://host/0?db=1&Passwd=***&x=1"),
    ],
)
def test_a_password_in_the_url_is_refused_and_never_shown(url: str, shown: str) -> None:
    with pytest.raises(ValueError, match="STATE_STORE_PASSWORD") as refused:
        check_store_url(url)
    assert "hunter2" not in str(refused.value)
    with pytest.raises(ValueError, match="STATE_STORE_PASSWORD") as refused:
        open_store(url)
    assert "hunter2" not in str(refused.value)
    assert redact_url(url) == shown


def test_a_sqlite_store_takes_no_password(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="takes no password"):
        open_store(f"sqlite:///{tmp_path / 's.db'}", password=SecretStr("hunter2"))


async def test_a_redis_user_and_password_authenticate(
    redis_server: RedisServer, redis_url: str
) -> None:
    """The user name in the URL, the password from the setting (Redis 6+ ACL users)."""
    with redis_server.client() as direct:
        direct.acl_setuser("svc", enabled=True, passwords=["+right"], keys="*", commands=["+@all"])
    user_url = redis_url.replace("redis://", "redis://svc@")
    try:
        async with open_store(user_url, password=SecretStr("right")) as store:
            await store.put("k", b"v")
            assert await store.get("k") == b"v"
        async with open_store(user_url, password=SecretStr("wrong")) as store:
            with pytest.raises(StateStoreError, match="invalid username-password"):
                await store.get("k")
    finally:
        with redis_server.client() as direct:
            direct.acl_deluser("svc")


async def test_rediss_with_a_private_ca_and_a_password(tmp_path: Path) -> None:
    """TLS with the server's certificate verified against `ssl_ca_certs`, as for a managed
    Redis behind a private CA; without that CA the connection is refused."""
    password = secrets.token_hex(8)
    server = RedisServer(tmp_path, password=password, tls=Tls.create(tmp_path))
    try:
        server.start()
        url = server.url(0)
        async with open_store(url, password=SecretStr(password)) as store:
            await store.put("k", b"over TLS", ttl_seconds=60)
            assert await store.get("k") == b"over TLS"
        untrusted = url.partition("?")[0]  # the system's CAs do not know this one
        async with open_store(untrusted, password=SecretStr(password)) as store:
            with pytest.raises(StateStoreError, match=f"Redis state store {re.escape(untrusted)}"):
                await store.get("k")
    finally:
        server.stop()


async def test_many_values_in_one_call(store_url: str) -> None:
    """`get_many` gives the values in the order asked (None where missing, repeats
    allowed) and `put_many` stores each under the prefix with the TTL given, for more keys
    than one SQLite statement takes."""
    items = {f"k{i}": f"v{i}".encode() for i in range(1200)}
    async with open_store(store_url, key_prefix="batch") as store:
        await store.put_many(items, ttl_seconds=60)
        await store.put_many({})
        asked = ["k1199", "missing", "k0", "k0", *(f"k{i}" for i in range(600, 0, -1))]
        assert await store.get_many(asked) == [items.get(key) for key in asked]
        assert await store.get_many([]) == []
        remaining = remaining_ttl(store_url, "batch:k7")
        assert remaining is not None
        assert 0 < remaining <= 60
        await store.put_many({"k0": b"replaced"})  # a put without a TTL gets the store's
        assert await store.get("k0") == b"replaced"
        default = remaining_ttl(store_url, "batch:k0")
        assert default is not None
        assert 60 < default <= DEFAULT_TTL_SECONDS


async def test_put_many_stores_all_or_nothing(store: StateStore) -> None:
    """A batch that cannot be written leaves no part of it behind."""
    await store.put("kept", b"before")
    bad: dict[str, bytes] = {"kept": b"after", "new": b"1", "broken": object()}  # type: ignore[dict-item]
    with pytest.raises((StateStoreError, redis.exceptions.DataError)):
        await store.put_many(bad)
    assert await store.get_many(["kept", "new", "broken"]) == [b"before", None, None]


async def test_verified_reads_of_many_bodies(store: StateStore) -> None:
    bodies = [b"one", b"two", b"three"]
    hashes = [hashlib.sha256(b).hexdigest() for b in bodies]
    await store.put_many({f"body:{h}": b for h, b in zip(hashes, bodies, strict=True)})
    await store.put(f"body:{hashes[1]}", b"altered")
    claims = [(f"body:{h}", h) for h in hashes] + [("body:missing", hashes[0])]
    assert await store.get_verified_many(claims) == [b"one", None, b"three", None]


class Recorder(StateStore):
    """A wrapper as a test writes one: only get, put and delete."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.calls: list[str] = []

    async def get(self, key: str) -> bytes | None:
        self.calls.append(f"get {key}")
        return await self.inner.get(key)

    async def put(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        self.calls.append(f"put {key}")
        await self.inner.put(key, value, ttl_seconds=ttl_seconds)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)


async def test_a_wrapper_sees_every_key_of_a_batch(store: StateStore) -> None:
    recorder = Recorder(store)
    await recorder.put_many({"a": b"1", "b": b"2"})
    assert await recorder.get_many(["b", "a", "c"]) == [b"2", b"1", None]
    assert recorder.calls == ["put a", "put b", "get b", "get a", "get c"]


async def test_buffered_puts_write_in_batches_and_at_the_end(store: StateStore) -> None:
    recorder = Recorder(store)
    async with BufferedPuts(recorder, max_items=3, max_bytes=100) as puts:
        await puts.put("a", b"1")
        await puts.put("b", b"2")
        assert await store.get_many(["a", "b"]) == [None, None]  # waiting
        await puts.put("c", b"3")  # the third: the batch is written
        assert await store.get_many(["a", "b", "c"]) == [b"1", b"2", b"3"]
        await puts.put("big", b"x" * 100)  # max_bytes reached: written at once
        assert await store.get("big") == b"x" * 100
        await puts.put("d", b"4")
    assert await store.get("d") == b"4"  # the rest, at the end of the block
    assert recorder.calls == ["put a", "put b", "put c", "put big", "put d"]


async def test_buffered_puts_are_dropped_when_the_block_fails(store: StateStore) -> None:
    async def download() -> None:
        async with BufferedPuts(store, max_items=10) as puts:
            await puts.put("a", b"1")
            raise RuntimeError("the download failed")

    with pytest.raises(RuntimeError, match="the download failed"):
        await download()
    assert await store.get("a") is None

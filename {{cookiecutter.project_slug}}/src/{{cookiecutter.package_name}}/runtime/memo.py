"""Memoization: results of expensive pure functions, cached in the state store by content.

An input seen before, in this run, an earlier one or on another worker, is not computed
again. The key says what was computed from what: the function's name, a version you bump
whenever the function's output changes, and the SHA-256 of the arguments' canonical JSON
(never the built-in `hash()`, which differs between processes). Entries expire after
`ttl_seconds`, which bounds the store.

    memo = Memo(store, ttl_seconds=settings.memo_ttl_seconds)
    key = memo_key("minhash", 1, body_sha256, num_perm, shingle_size)
    signature = await memo.get(key)
    if signature is None:
        signature = minhash(body, num_perm, shingle_size)
        await memo.put(key, signature)

or, for your own async functions of JSON arguments and results:

    @memoize(lambda: memo, name="summary", version=2)
    async def summary(url: str, words: int) -> dict[str, int]: ...

Arguments and results are JSON values (pydantic models are accepted as arguments);
a result comes back as JSON gives it, e.g. a tuple as a list.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from .store import StateStore

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger(__name__)


def memo_key(name: str, version: int | str, *args: object) -> str:
    """`memo:<name>:v<version>:<SHA-256 of the arguments' canonical JSON>`, the same everywhere."""
    canonical = json.dumps(
        args, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"memo:{name}:v{version}:{digest}"


def _json_default(value: object) -> Any:
    model_dump = getattr(value, "model_dump", None)  # a pydantic model, without importing pydantic
    if callable(model_dump):
        return model_dump(mode="json")
    raise TypeError(
        f"memo_key: a {type(value).__name__} is not JSON; pass str, int, float, bool, None,"
        " lists, dicts or pydantic models (for bytes, pass their SHA-256)"
    )


class Memo:
    """JSON values in a `StateStore` under `memo_key`s, expiring after `ttl_seconds`."""

    def __init__(self, store: StateStore, *, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, not {ttl_seconds}")
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.hits = 0  # counters, for stats and metrics
        self.misses = 0

    async def get(self, key: str) -> Any | None:
        """The cached value, or None if there is none (or it expired, or is unreadable)."""
        _found, value = await self.lookup(key)
        return value

    async def lookup(self, key: str) -> tuple[bool, Any]:
        """(True, value) on a hit, (False, None) on a miss: tells a cached None from none."""
        raw = await self.store.get(key)
        if raw is not None:
            try:
                entry = json.loads(raw)
                if isinstance(entry, dict) and "value" in entry:
                    self.hits += 1
                    return True, entry["value"]
                reason = "not a memo entry"
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                reason = f"not JSON ({exc})"
            logger.warning("memo %s ignored, the value is recomputed: %s", key, reason)
        self.misses += 1
        return False, None

    async def put(self, key: str, value: Any) -> None:
        """Cache the JSON value `value` under `key` for `ttl_seconds`."""
        await self.store.put(key, _encode(value), ttl_seconds=self.ttl_seconds)


def _encode(value: Any) -> bytes:
    return json.dumps({"value": value}, separators=(",", ":"), ensure_ascii=False).encode()


def memoize(
    memo: Memo | Callable[[], Memo], *, name: str, version: int | str
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate an async pure function so that each distinct call is computed once per TTL.

    `memo` is a `Memo` or a function returning one, for when the store is opened after
    the decoration (at worker start). Arguments are bound to the function's parameters,
    defaults included, so `f(1)`, `f(1, 2)` and `f(x=1)` share an entry if they are the
    same call. A miss returns the value as a hit would (a JSON round trip), so the result
    never depends on the cache. Concurrent first calls with the same arguments each compute.
    """

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"memoize: {fn.__qualname__} is not an async function")
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        async def memoized(*args: P.args, **kwargs: P.kwargs) -> R:
            cache = memo if isinstance(memo, Memo) else memo()
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            key = memo_key(name, version, *bound.arguments.values())
            found, value = await cache.lookup(key)
            if found:
                return cast(R, value)
            encoded = _encode(await fn(*args, **kwargs))
            await cache.store.put(key, encoded, ttl_seconds=cache.ttl_seconds)
            return cast(R, json.loads(encoded)["value"])

        return memoized

    return decorate

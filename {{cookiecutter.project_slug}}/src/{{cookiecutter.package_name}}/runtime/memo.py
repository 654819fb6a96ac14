"""Memoization: results of expensive pure functions, cached in the state store by content.

An input seen before, in this run, an earlier one or on another worker, is not computed
again. The key says what was computed from what: the function's name, a version you bump
whenever the function's output changes, and the SHA-256 of the arguments' canonical JSON
(never the built-in `hash()`, which differs between processes). Entries expire after
`ttl_seconds`, which bounds the store.

    memo = Memo(store, ttl_seconds=settings.memo_ttl_seconds)
    key = memo_key("minhash", 1, body_sha256, num_perm, shingle_size)
    signature = await memo.get(key, validate=signature_of_length(num_perm))
    if signature is None:
        signature = minhash(body, num_perm, shingle_size)
        await memo.put(key, signature)

or, for your own async functions of JSON arguments and results:

    @memoize(lambda: memo, name="summary", version=2, validate=Summary.model_validate)
    async def summary(url: str, words: int) -> Summary: ...

Arguments and results are JSON values (pydantic models are accepted as arguments);
a result comes back as JSON gives it, e.g. a tuple as a list, unless `validate` turns it
back into your type.

Check before use: a stored value is only bytes that someone wrote (an older version of
the code, a bug, a person with access to the store). An entry is used only if it is a
memo entry, was stored under the key it is read from (each entry holds its key: another
input's entry copied over this one is refused) and passes `validate` (a function that
returns the value, or raises ValueError or pydantic's ValidationError: shape and
ranges). Anything else is a miss, logged once as a warning, and recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, cast, overload

from .store import StateStore

P = ParamSpec("P")
R = TypeVar("R")
V = TypeVar("V")

Validator = Callable[[Any], V]
"""Turns a stored JSON value into a checked one, or raises ValueError (pydantic's
ValidationError is one) or TypeError: e.g. `PageStats.model_validate`."""

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

    @overload
    async def get(self, key: str) -> Any | None: ...
    @overload
    async def get(self, key: str, validate: Validator[V]) -> V | None: ...
    async def get(self, key: str, validate: Validator[Any] | None = None) -> Any | None:
        """The cached value, or None if there is none (or it expired, or is unusable)."""
        _found, value = await self.lookup(key, validate)
        return value

    async def lookup(self, key: str, validate: Validator[Any] | None = None) -> tuple[bool, Any]:
        """(True, value) on a hit, (False, None) on a miss: tells a cached None from none.

        With `validate`, a hit is the value it returns; a value it refuses is a miss.
        """
        return self._checked(key, await self.store.get(key), validate)

    async def get_many(
        self, keys: Sequence[str], validate: Validator[V] | None = None
    ) -> list[V | None]:
        """`get` of every key, in one round trip to the store (`StateStore.get_many`)."""
        raws = await self.store.get_many(keys)
        return [self._checked(key, raw, validate)[1] for key, raw in zip(keys, raws, strict=True)]

    async def put(self, key: str, value: Any) -> None:
        """Cache the JSON value `value` under `key` for `ttl_seconds`."""
        await self.store.put(key, _encode(key, value), ttl_seconds=self.ttl_seconds)

    async def put_many(self, values: Mapping[str, Any]) -> None:
        """`put` of every (key, value), in one round trip to the store."""
        encoded = {key: _encode(key, value) for key, value in values.items()}
        await self.store.put_many(encoded, ttl_seconds=self.ttl_seconds)

    def _checked(
        self, key: str, raw: bytes | None, validate: Validator[Any] | None
    ) -> tuple[bool, Any]:
        if raw is not None:
            try:
                value = _decode(raw, key)
                if validate is not None:
                    value = validate(value)
            except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
                logger.warning(
                    "memo %s ignored, the value is recomputed: %s", key, _first_line(exc)
                )
            else:
                self.hits += 1
                return True, value
        self.misses += 1
        return False, None


def _first_line(exc: BaseException) -> str:
    """A short reason (pydantic's first error with its header), for a one-line warning."""
    lines = [line.strip() for line in str(exc).strip().splitlines()[:3]]
    return " ".join(lines)[:300] or type(exc).__name__


def _decode(raw: bytes, key: str) -> Any:
    """The value of a memo entry read from `key`; ValueError if it is not one, or if it was
    stored under another key (another input's result, copied or moved here)."""
    try:
        entry = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(entry, dict) or "value" not in entry:
        raise ValueError("not a memo entry")
    if entry.get("key") != key:
        raise ValueError(f"stored for another key ({str(entry.get('key'))[:120]!r})")
    return entry["value"]


def _encode(key: str, value: Any) -> bytes:
    """A memo entry: the value with the key it belongs to (checked by `_decode`)."""
    entry = {"key": key, "value": value}
    return json.dumps(
        entry, separators=(",", ":"), ensure_ascii=False, default=_json_default
    ).encode()


def memoize(
    memo: Memo | Callable[[], Memo],
    *,
    name: str,
    version: int | str,
    validate: Validator[Any] | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate an async pure function so that each distinct call is computed once per TTL.

    `memo` is a `Memo` or a function returning one, for when the store is opened after
    the decoration (at worker start). Arguments are bound to the function's parameters,
    defaults included, so `f(1)`, `f(1, 2)` and `f(x=1)` share an entry if they are the
    same call. A miss returns the value as a hit would (a JSON round trip, then `validate`
    if given), so the result never depends on the cache. Concurrent first calls with the
    same arguments each compute. A pydantic result is stored as its JSON; give
    `validate=Model.model_validate` to get the model back (and to check what is read).
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
            found, value = await cache.lookup(key, validate)
            if found:
                return cast(R, value)
            encoded = _encode(key, await fn(*args, **kwargs))
            await cache.store.put(key, encoded, ttl_seconds=cache.ttl_seconds)
            value = json.loads(encoded)["value"]
            return cast(R, validate(value) if validate else value)

        return memoized

    return decorate

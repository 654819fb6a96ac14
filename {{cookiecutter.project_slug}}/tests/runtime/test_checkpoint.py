"""Checkpoints: round trips, save intervals, keys per activity, and no torn value after kill -9.

Every test runs once per state store backend, SQLite and Redis (see `store_url` in conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import signal
import textwrap
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from {{ cookiecutter.package_name }}.runtime import (
    checkpoint as checkpoint_module,
)
from {{ cookiecutter.package_name }}.runtime.checkpoint import (
    Checkpoint,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
    open_store,
)

from ..conftest import service_env
from ..toolkit.launcher import PIPE, start_python


class Progress(BaseModel):
    done: list[int] = []


def checkpoint(
    store: StateStore, *, every_items: int = 3, every_seconds: float = 60.0
) -> Checkpoint[Progress]:
    return Checkpoint(
        store, "checkpoint:test", Progress, every_items=every_items, every_seconds=every_seconds
    )


async def test_save_and_load_round_trip(store: StateStore) -> None:
    first = checkpoint(store)
    assert await first.load() is None
    await first.save(Progress(done=[1, 2, 3]))
    assert first.saves == 1
    assert first.last_save_bytes > 0
    assert await checkpoint(store).load() == Progress(done=[1, 2, 3])


async def test_maybe_save_every_n_items(store: StateStore) -> None:
    cp = checkpoint(store, every_items=3)
    progress = Progress()
    saved = []
    for item in range(7):
        progress.done.append(item)
        saved.append(await cp.maybe_save(progress))
    assert saved == [False, False, True, False, False, True, False]
    assert cp.saves == 2
    assert await cp.load() == Progress(done=[0, 1, 2, 3, 4, 5])
    assert await cp.maybe_save(progress, items=5) is True  # a chunk of items at once


class FakeClock:
    """What the checkpoint module reads as `time`: a monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_maybe_save_every_t_seconds(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()  # the intervals are the clock's, not the machine's speed
    monkeypatch.setattr(checkpoint_module, "time", clock)
    cp = checkpoint(store, every_items=1_000, every_seconds=0.2)
    clock.now += 0.1
    assert await cp.maybe_save(Progress(done=[1])) is False
    clock.now += 0.1
    assert await cp.maybe_save(Progress(done=[1, 2])) is True  # 0.2 s since it started
    clock.now += 0.1
    assert await cp.maybe_save(Progress(done=[1, 2, 3])) is False  # the clock restarted
    assert await cp.load() == Progress(done=[1, 2])
    clock.now += 0.1
    assert await cp.maybe_save(Progress(done=[1, 2, 3, 4])) is True
    assert await cp.load() == Progress(done=[1, 2, 3, 4])


async def test_clear_deletes_the_checkpoint(store: StateStore) -> None:
    cp = checkpoint(store)
    await cp.save(Progress(done=[1]))
    await cp.clear()
    assert await cp.load() is None
    assert await store.get(cp.key) is None


async def test_ttl_bounds_abandoned_checkpoints(store: StateStore) -> None:
    cp = Checkpoint(store, "k", Progress, every_items=1, every_seconds=1, ttl_seconds=0.05)
    await cp.save(Progress(done=[1]))
    await asyncio.sleep(0.1)
    assert await cp.load() is None


def stored(state_json: bytes, *, digest_of: bytes | None = None, **header: object) -> bytes:
    """A checkpoint as `save` writes it (format 1, version 1), with some fields changed."""
    fields: dict[str, object] = {
        "format": 1,
        "version": 1,
        "key": "checkpoint:test",
        "sha256": hashlib.sha256(state_json if digest_of is None else digest_of).hexdigest(),
    }
    fields.update(header)
    return json.dumps(fields).encode() + b"\n" + state_json


GOOD = b'{"done":[1,2]}'


async def test_the_stored_value_is_a_header_line_then_the_state(store: StateStore) -> None:
    cp = checkpoint(store)
    await cp.save(Progress(done=[1, 2]))
    header, state_json = (await store.get(cp.key) or b"").split(b"\n")
    assert state_json == GOOD
    assert json.loads(header) == {
        "format": 1,
        "version": 1,
        "key": "checkpoint:test",
        "sha256": hashlib.sha256(GOOD).hexdigest(),
    }
    await store.put(cp.key, stored(GOOD))  # the helper below writes what `save` writes
    assert await cp.load() == Progress(done=[1, 2])


@pytest.mark.parametrize(
    ("value", "why"),
    [
        pytest.param(b"\xff\xfe garbage", "no JSON header", id="corrupt-bytes"),
        pytest.param(stored(GOOD)[:30], "no JSON header", id="torn-header"),
        pytest.param(stored(GOOD)[:-3], "checksum mismatch", id="torn-state"),
        pytest.param(b"[1, 2]", "not a checkpoint", id="no-header"),
        pytest.param(stored(GOOD, format=0), "format 0", id="other-format"),
        pytest.param(stored(GOOD, version=2), "version 2", id="other-version"),
        pytest.param(stored(GOOD, digest_of=b"{}"), "checksum mismatch", id="altered"),
        pytest.param(stored(b'{"done":"no list"}'), "not a valid Progress", id="older-schema"),
        pytest.param(
            stored(GOOD, key="checkpoint:wf:run:other-activity"),
            "saved for another key",
            id="another-activitys",
        ),
        pytest.param(stored(b'{"done":[1,-5]}'), "not a valid Cursor", id="out-of-range"),
    ],
)
async def test_unusable_checkpoint_is_ignored_with_a_warning(
    store: StateStore, caplog: pytest.LogCaptureFixture, value: bytes, why: str
) -> None:
    cp = checkpoint(store) if "Cursor" not in why else cursor_checkpoint(store)
    await store.put(cp.key, value)
    with caplog.at_level(logging.WARNING):
        assert await cp.load() is None
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert cp.key in record.getMessage()
    assert why in record.getMessage()


class Cursor(BaseModel):
    """A state whose model checks its ranges (fields of non-negative items)."""

    done: list[Annotated[int, Field(ge=0)]] = []


def cursor_checkpoint(store: StateStore) -> Checkpoint[Cursor]:
    return Checkpoint(store, "checkpoint:test", Cursor, every_items=1, every_seconds=60)


@pytest.mark.parametrize(
    ("saved", "accepted"),
    [([0, 1, 2], True), ([0, 1, 2, 3, 4, 5], False), ([7], False)],
    ids=["in-range", "past-the-end", "not-an-item"],
)
async def test_a_checkpoint_that_cannot_belong_to_this_input_is_refused(
    store: StateStore, caplog: pytest.LogCaptureFixture, saved: list[int], accepted: bool
) -> None:
    """`load(check)`: a state the model accepts but this input cannot have (more items done
    than there are, an item that is not one of them) is ignored, once, with a warning, and
    the work starts from 0: never resumed from something wrong."""
    items = [0, 1, 2, 3, 4]

    def check(state: Progress) -> None:
        if len(state.done) > len(items) or not set(state.done) <= set(items):
            raise ValueError(f"{len(state.done)} items done of {len(items)}")

    cp = checkpoint(store)
    await cp.save(Progress(done=saved))
    with caplog.at_level(logging.WARNING):
        loaded = await cp.load(check)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    if accepted:
        assert loaded == Progress(done=saved)
        assert not warnings
    else:
        assert loaded is None
        assert len(warnings) == 1
        assert "refused by its check" in warnings[0].getMessage()


async def run_in_activity(store: StateStore, **info: Any) -> str:
    """The key `for_current_activity` gives in an activity with these `info` fields."""

    async def key_of_checkpoint() -> str:
        cp = Checkpoint.for_current_activity(store, Progress, every_items=1, every_seconds=1)
        return cp.key

    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, **info)
    return await env.run(key_of_checkpoint)


async def test_keys_are_per_activity_and_run_and_stable_across_attempts(
    store: StateStore,
) -> None:
    base = {"workflow_id": "wf", "workflow_run_id": "run-1", "activity_id": "7"}
    key = await run_in_activity(store, **base, attempt=1)
    assert key == "checkpoint:wf:run-1:7"
    assert await run_in_activity(store, **base, attempt=4) == key
    others = [
        await run_in_activity(store, **{**base, "activity_id": "8"}),
        await run_in_activity(store, **{**base, "workflow_run_id": "run-2"}),
        await run_in_activity(store, **{**base, "workflow_id": "wf-2"}),
        await run_in_activity(
            store, workflow_id=None, workflow_run_id=None, activity_id="7", activity_run_id="r"
        ),
    ]
    assert len({key, *others}) == 5


async def test_a_retry_resumes_from_the_last_save(store: StateStore) -> None:
    """The docstring's pattern: attempt 1 dies at item 7, attempt 2 redoes only items 6-9."""
    computed: list[int] = []
    heartbeats: list[object] = []

    @activity.defn
    async def square_all(items: list[int], fail_at: int | None) -> list[int]:
        cp = Checkpoint.for_current_activity(store, Progress, every_items=3, every_seconds=60)
        progress = await cp.load() or Progress()
        for item in items[len(progress.done) :]:
            if item == fail_at:
                raise RuntimeError("worker died")
            computed.append(item)
            progress.done.append(item * item)
            if await cp.maybe_save(progress):
                activity.heartbeat(len(progress.done))
        await cp.clear()
        return progress.done

    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: heartbeats.append(details[0])
    with pytest.raises(RuntimeError, match="worker died"):
        await env.run(square_all, list(range(10)), 7)
    assert computed == list(range(7))
    assert heartbeats == [3, 6]

    computed.clear()
    env.info = dataclasses.replace(env.info, attempt=2)
    assert await env.run(square_all, list(range(10)), None) == [i * i for i in range(10)]
    assert computed == [6, 7, 8, 9]
    assert await store.get("checkpoint:test:test-run:test") is None  # cleared on success


SAVER = textwrap.dedent(
    """
    import asyncio, hashlib, sys
    from pydantic import BaseModel, Field
    from {{ cookiecutter.package_name }}.runtime.checkpoint import Checkpoint
    from {{ cookiecutter.package_name }}.runtime.store import open_store

    class Big(BaseModel):
        seq: int
        blob: str

    def blob(seq):
        return hashlib.sha256(str(seq).encode()).hexdigest() * (int(sys.argv[2]) // 64)

    async def main(url):
        async with open_store(url) as store:
            cp = Checkpoint(store, "big", Big, every_items=1, every_seconds=0)
            last = await cp.load()
            seq = 0 if last is None else last.seq
            print(f"ready {seq}", flush=True)
            while True:
                seq += 1
                await cp.save(Big(seq=seq, blob=blob(seq)))
                print(f"saved {seq}", flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


class Big(BaseModel):
    seq: int
    blob: str


BLOB_BYTES = 2_000_000


GUARD_SECONDS = 120.0  # ends a broken test; no speed makes the test pass or fail


async def save_then_kill(store_url: str, start: int, saves: int) -> list[int]:
    """Start a saver (it must resume from checkpoint `start`) and SIGKILL it right after it
    says it saved `saves` new checkpoints (0: right after "ready"). The kill lands before, in
    or after its next save, wherever the child happens to be: each is fine. Returns the
    checkpoints it said it saved, in order (a line the kill cut short left out)."""
    child = await start_python(
        ["-c", SAVER, store_url, str(BLOB_BYTES)], env=service_env(), stdout=PIPE, stderr=PIPE
    )
    assert child.stdout is not None
    assert child.stderr is not None
    ready = b"ready %d\n" % start
    stop_at = ready if saves == 0 else b"saved %d\n" % (start + saves)
    read: list[bytes] = []
    try:
        async with asyncio.timeout(GUARD_SECONDS):
            while line := await child.stdout.readline():  # b"": it exited, or the kill cut it
                read.append(line)
                if line == stop_at or read[0] != ready:
                    break
    except TimeoutError:
        pass  # the assertion below shows what it printed
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGKILL)
        rest, errors = await asyncio.gather(child.stdout.read(), child.stderr.read())
        await child.wait()
    said = b"".join(read) + rest
    printed = f"it printed:\n{said.decode(errors='replace')}\n{errors.decode(errors='replace')}"
    assert read, f"the saver said nothing; {printed}"
    assert read[0] == ready, f"the saver did not start from {start}; {printed}"
    assert read[-1] == stop_at, f"the saver never said {stop_at!r}; {printed}"
    lines = said.split(b"\n")[:-1]  # drop a line the kill cut short (or the empty last one)
    return [int(line.removeprefix(b"saved ")) for line in lines[1:]]


async def test_kill_9_during_saves_never_leaves_a_torn_checkpoint(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL a process saving 2 MB checkpoints: the last save or the one before survives.

    Each child continues from the checkpoint the previous one left, as a retry would. It is
    killed right after it says it saved `more` new ones (0: right after it starts, so in or
    before its first save): what it says, not a delay, chooses the moment.
    """
    last_saved = 0
    for more in (0, 1, 2, 3):
        reported = await save_then_kill(store_url, last_saved, more)
        assert reported == list(range(last_saved + 1, last_saved + 1 + len(reported)))
        floor = reported[-1] if reported else last_saved  # the child said this one was saved
        assert floor >= last_saved + more

        async with open_store(store_url) as store:
            with caplog.at_level(logging.WARNING):
                state = await Checkpoint(store, "big", Big, every_items=1, every_seconds=0).load()
        assert not caplog.records, "a torn or invalid checkpoint was read"
        if floor == 0:
            assert state is None or state.seq == 1
        else:
            assert state is not None
            assert floor <= state.seq <= floor + 1  # the save killed before its print counts
        if state is not None:
            expected = hashlib.sha256(str(state.seq).encode()).hexdigest()
            assert state.blob == expected * (BLOB_BYTES // 64)
            last_saved = state.seq
    assert last_saved >= 1 + 2 + 3  # what the children were killed after, at least

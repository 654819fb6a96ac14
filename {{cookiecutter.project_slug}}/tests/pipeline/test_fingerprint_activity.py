"""The fingerprint activity in the SDK's ActivityEnvironment, with a real pool and store."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from {{ cookiecutter.package_name }}.pipeline.activities.fingerprint import (
    MISSING_BODY,
    FingerprintActivities,
    FingerprintState,
    signature_memo_key,
)
from {{ cookiecutter.package_name }}.pipeline.minhash import (
    MAX_HASH,
    signature,
)
from {{ cookiecutter.package_name }}.pipeline.models import (
    DocumentRef,
    FetchResult,
    FingerprintRequest,
    MinHashParams,
    body_key,
)
from {{ cookiecutter.package_name }}.runtime.checkpoint import (
    Checkpoint,
)
from {{ cookiecutter.package_name }}.runtime.memo import (
    Memo,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    StateStore,
)

from ..toolkit.gate import CHECKPOINT_PREFIX, Gate, GatedStore
from ..toolkit.http_site import random_words


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about the activity, not the store (test_store.py runs both)."""
    return f"sqlite:///{tmp_path / 'state.db'}"


PARAMS = MinHashParams(num_perm=32, shingle_size=3)


async def stored_documents(
    store: StateStore, count: int, words: int, tag: str
) -> list[DocumentRef]:
    documents = []
    for i in range(count):
        body = random_words(words, f"{tag}-{i}").encode()
        sha256 = hashlib.sha256(body).hexdigest()
        await store.put(body_key(sha256), body)
        documents.append(DocumentRef(url=f"u{i}", sha256=sha256, bytes=len(body), words=words))
    return documents


async def request_for(
    store: StateStore, documents: list[DocumentRef], params: MinHashParams, tag: str
) -> FingerprintRequest:
    """Store the documents' list, as stage 1 does, and ask for their signatures."""
    await store.put(f"documents:{tag}", FetchResult(documents=documents).model_dump_json().encode())
    return FingerprintRequest(
        documents_key=f"documents:{tag}", signatures_key=f"signatures:{tag}", minhash=params
    )


def activities(store: StateStore, pool: CpuPool, **overrides: Any) -> FingerprintActivities:
    options: dict[str, Any] = {
        "chunk_size": 2,
        "checkpoint_every_items": 4,
        "checkpoint_every_seconds": 60.0,
        "memo_ttl_seconds": 3600.0,
    }
    options.update(overrides)
    return FingerprintActivities(store, pool, **options)


async def test_computes_then_memoizes(store: StateStore, pool: CpuPool) -> None:
    documents = await stored_documents(store, 6, 50, "memo")
    request = await request_for(store, documents, PARAMS, "memo")
    first = await ActivityEnvironment().run(activities(store, pool).fingerprint_documents, request)
    assert first.model_dump() == {"computed": 6, "restored": 0, "memoized": 0, "attempt": 1}

    signatures = await store.get_json(request.signatures_key)
    assert signatures is not None
    body = await store.get(body_key(documents[0].sha256))
    assert body is not None
    assert signatures[documents[0].sha256] == signature(body.decode(), 32, 3)

    second = await ActivityEnvironment().run(activities(store, pool).fingerprint_documents, request)
    assert second.model_dump() == {"computed": 0, "restored": 0, "memoized": 6, "attempt": 1}


async def test_a_poisoned_memo_entry_is_recomputed_never_used(
    store: StateStore, pool: CpuPool, caplog: pytest.LogCaptureFixture
) -> None:
    """Memo entries are checked before use: another document's signature copied under this
    one's key, a signature of the wrong length (it would shift every later one in stage 3)
    or with values out of range is a miss, logged once each, and computed again."""
    documents = await stored_documents(store, 4, 50, "poison")
    request = await request_for(store, documents, PARAMS, "poison")
    await ActivityEnvironment().run(activities(store, pool).fingerprint_documents, request)
    keys = [signature_memo_key(d.sha256, PARAMS) for d in documents]
    await store.put(keys[0], await store.get(keys[1]) or b"")  # another document's entry
    memo = Memo(store, ttl_seconds=60)
    await memo.put(keys[2], [1] * (PARAMS.num_perm - 1))  # one value short
    await memo.put(keys[3], [MAX_HASH + 1] * PARAMS.num_perm)  # out of range

    with caplog.at_level(logging.WARNING):
        again = await ActivityEnvironment().run(
            activities(store, pool).fingerprint_documents, request
        )
    assert again.model_dump() == {"computed": 3, "restored": 0, "memoized": 1, "attempt": 1}
    signatures = await store.get_json(request.signatures_key)
    assert signatures is not None
    for document in documents:
        body = await store.get(body_key(document.sha256))
        assert body is not None
        assert signatures[document.sha256] == signature(body.decode(), 32, 3)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 3, warned
    assert any("stored for another key" in w for w in warned)
    assert any("not a signature of 32 values (31)" in w for w in warned)
    assert any("out of range" in w for w in warned)


async def test_a_checkpoint_of_other_bodies_is_ignored(store: StateStore, pool: CpuPool) -> None:
    """A checkpoint holding a body that is not in the batch, or a signature of the wrong
    size, cannot be this batch's: the work starts again from 0."""
    documents = await stored_documents(store, 3, 50, "foreign")
    env = ActivityEnvironment()
    for poisoned in (
        {"f" * 64: [7] * 32, documents[0].sha256: [7] * 32},
        {documents[0].sha256: [7] * 31},
    ):

        async def save_poisoned(signatures: dict[str, list[int]] = poisoned) -> None:
            checkpoint = Checkpoint.for_current_activity(
                store, FingerprintState, every_items=1, every_seconds=1
            )
            await checkpoint.save(FingerprintState(signatures=signatures))

        await env.run(save_poisoned)
        request = await request_for(store, documents, PARAMS, f"foreign-{len(poisoned)}")
        result = await env.run(
            activities(store, pool, memo_ttl_seconds=0.001).fingerprint_documents, request
        )
        assert (result.restored, result.computed + result.memoized) == (0, 3)
        signatures = await store.get_json(request.signatures_key)
        assert signatures is not None
        assert set(signatures) == {d.sha256 for d in documents}
        assert all(value != [7] * 32 for value in signatures.values())


async def test_an_altered_body_is_never_fingerprinted(store: StateStore, pool: CpuPool) -> None:
    """A body is read back checked against its SHA-256: one altered in the store fails the
    activity as MissingBody, not retryable (the batch workflow fetches again)."""
    documents = await stored_documents(store, 2, 50, "altered")
    await store.put(body_key(documents[1].sha256), b"not the document that was fetched")
    request = await request_for(store, documents, PARAMS, "altered")
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(activities(store, pool).fingerprint_documents, request)
    assert failed.value.type == MISSING_BODY
    assert failed.value.non_retryable
    assert documents[1].sha256 in str(failed.value)


async def test_resumes_from_a_checkpoint(store: StateStore, pool: CpuPool) -> None:
    documents = await stored_documents(store, 5, 50, "resume")
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=2)
    # What an earlier attempt left behind: two signatures (deliberately fake values, so
    # the test can see they were taken as they are, not recomputed).
    earlier = FingerprintState(signatures={d.sha256: [7] * 32 for d in documents[:2]})

    async def save_earlier() -> None:
        checkpoint = Checkpoint.for_current_activity(
            store, FingerprintState, every_items=1, every_seconds=1
        )
        await checkpoint.save(earlier)

    await env.run(save_earlier)
    request = await request_for(store, documents, PARAMS, "resume")
    result = await env.run(activities(store, pool).fingerprint_documents, request)
    assert result.model_dump() == {"computed": 3, "restored": 2, "memoized": 0, "attempt": 2}
    signatures = await store.get_json(request.signatures_key)
    assert signatures is not None
    assert signatures[documents[0].sha256] == [7] * 32

    async def checkpoint_left() -> object:
        checkpoint = Checkpoint.for_current_activity(
            store, FingerprintState, every_items=1, every_seconds=1
        )
        return await checkpoint.load()

    assert await env.run(checkpoint_left) is None  # deleted once the activity completed


class CheckpointAudit(StateStore):
    """`inner`, but the first memo write waits until a checkpoint has been saved, and every
    checkpoint saved is read back: which of its signatures the memo does not hold yet.

    So a checkpoint is certainly saved while one chunk's signatures are computed and not
    yet memoized: the moment a kill -9 can come, made certain instead of hoped for.
    """

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.checkpoint_saved = asyncio.Event()
        self.memo_held = False
        self.not_memoized: list[set[str]] = []  # per checkpoint saved

    async def get(self, key: str) -> bytes | None:
        return await self.inner.get(key)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def put(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        if key.startswith("memo:") and not self.memo_held:
            self.memo_held = True
            await asyncio.wait_for(self.checkpoint_saved.wait(), timeout=60)  # a guard only
        await self.inner.put(key, value, ttl_seconds=ttl_seconds)
        if key.startswith(CHECKPOINT_PREFIX):
            checkpoint = Checkpoint.for_current_activity(
                self.inner, FingerprintState, every_items=1, every_seconds=1
            )
            saved = await checkpoint.load()
            assert saved is not None
            shas = list(saved.signatures)
            memo = await self.inner.get_many([signature_memo_key(h, PARAMS) for h in shas])
            self.not_memoized.append({h for h, m in zip(shas, memo, strict=True) if m is None})
            self.checkpoint_saved.set()


async def test_a_checkpoint_never_holds_a_signature_the_memo_does_not(
    store: StateStore, pool: CpuPool
) -> None:
    """A worker killed after a checkpoint leaves its finished work in the checkpoint, the
    memo or both, never in the checkpoint alone: the next attempt's `restored + memoized`
    is then exactly what was finished (test_resume.py's kill -9 test counts on it)."""
    documents = await stored_documents(store, 4, 50, "order")  # two chunks, both in flight
    request = await request_for(store, documents, PARAMS, "order")
    audit = CheckpointAudit(store)
    run = activities(audit, pool, checkpoint_every_items=2).fingerprint_documents
    result = await ActivityEnvironment().run(run, request)
    assert result.computed == 4
    assert audit.memo_held, "no memo write was held"
    assert audit.not_memoized, "no checkpoint was saved mid-stage"
    assert audit.not_memoized == [set()] * len(audit.not_memoized)


class WatchedGatedStore(GatedStore):
    """A `GatedStore` that also says when a call is waiting at the closed gate.

    Cancelling the activity releases the gate only through a call held there (its
    cancellation); the test cancels once one certainly is.
    """

    def __init__(self, inner: StateStore, gate: Gate) -> None:
        super().__init__(inner, gate)
        self.call_held = asyncio.Event()

    async def _pass(self) -> None:
        if self._closed and not self._released:
            self.call_held.set()
        await super()._pass()


async def test_cancellation_stops_the_work_and_keeps_its_progress(
    store: StateStore, pool: CpuPool, tmp_path: Path
) -> None:
    documents = await stored_documents(store, 40, 200, "cancel")
    request = await request_for(store, documents, PARAMS, "cancel")
    # Held after the first checkpoint (some progress saved): the activity is certainly in
    # flight, and cannot finish, however fast the machine is, until the gate opens. It never
    # does: the cancellation must end the activity without it.
    gate = Gate(tmp_path / "gate")
    gated = WatchedGatedStore(store, gate)
    env = ActivityEnvironment()
    running = asyncio.create_task(env.run(activities(gated, pool).fingerprint_documents, request))
    try:
        await gate.wait_held(timeout=60)
        await asyncio.wait_for(gated.call_held.wait(), timeout=60)
        assert not running.done(), "the activity ended while held at the gate"
        env.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(running, timeout=60)  # a guard: a hang fails, never a speed
    finally:
        if not running.done():
            gate.open()  # a failed test must not leave the activity (and the pool) busy
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
    assert not gate.open_file.exists(), "the cancellation needed the gate opened"

    async def saved() -> FingerprintState | None:
        checkpoint = Checkpoint.for_current_activity(
            store, FingerprintState, every_items=1, every_seconds=1
        )
        return await checkpoint.load()

    state = await ActivityEnvironment().run(saved)  # same info, so the same key
    assert state is not None
    every_items = activities(store, pool).checkpoint_every_items
    assert every_items <= len(state.signatures) < len(documents)  # the next attempt starts here

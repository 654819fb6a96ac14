"""The process-pool CPU activity, copied alone: signatures computed on a real pool, then memoized.

Run by tests/test_patterns.py in a venv holding only the files and dependencies that
docs/patterns.md lists, with the package copied as `yourpackage`. Deliberately thin: it
calls the activity as the worker would, through `ActivityEnvironment`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys

from temporalio.testing import ActivityEnvironment
from yourpackage.pipeline.activities.fingerprint import FingerprintActivities
from yourpackage.pipeline.models import (
    DocumentRef,
    FetchResult,
    FingerprintRequest,
    MinHashParams,
    body_key,
)
from yourpackage.runtime.pool import CpuPool
from yourpackage.runtime.store import SqliteStateStore

TEXTS = {
    "a": "the quick brown fox jumps over the lazy dog near the river bank today",
    "b": "the quick brown fox jumps over the lazy dog near the river bank tonight",
    "c": "an entirely different sentence about process pools and event loops",
}


async def main(db: str) -> None:
    async with SqliteStateStore(db) as store:
        documents = []
        for name, text in TEXTS.items():
            body = text.encode()
            sha256 = hashlib.sha256(body).hexdigest()
            await store.put(body_key(sha256), body)
            documents.append(
                DocumentRef(url=f"http://x/{name}", sha256=sha256, bytes=len(body), words=12)
            )
        # The documents' list is in the store too (the fetch pattern puts it there).
        listed = FetchResult(documents=documents).model_dump_json().encode()
        await store.put("documents:smoke", listed)
        request = FingerprintRequest(
            documents_key="documents:smoke",
            signatures_key="signatures:smoke",
            minhash=MinHashParams(num_perm=32, shingle_size=2),
        )
        with CpuPool(2) as pool:
            activities = FingerprintActivities(
                store,
                pool,
                chunk_size=1,
                checkpoint_every_items=1,
                checkpoint_every_seconds=60,
                memo_ttl_seconds=600,
            )
            first = await ActivityEnvironment().run(activities.fingerprint_documents, request)
            assert (first.computed, first.memoized) == (3, 0), first
            signatures = await store.get_json(request.signatures_key)
            assert sorted(signatures) == sorted(d.sha256 for d in documents)
            assert all(len(signature) == 32 for signature in signatures.values())

            again = await ActivityEnvironment().run(activities.fingerprint_documents, request)
            assert (again.computed, again.memoized) == (0, 3), again
            assert await store.get_json(request.signatures_key) == signatures


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
    print("ok", flush=True)
    os._exit(0)  # skip finalisation, where the SDK's threads can crash (sdk-python issue 300)

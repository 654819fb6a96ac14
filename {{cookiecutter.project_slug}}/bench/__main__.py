"""`make bench`: the numbers behind the template's claims, measured side by side.

- CPU stage: the same MinHash work on 1 process, on every core, and on a thread pool
  (the GIL: threads do not speed up pure Python).
- Checkpoints: the fingerprint activity with a checkpoint every few documents, and none.
- Memoization: a memo hit against computing the signature.
- Fetch clients: the fetch activity on aiohttp (GuardedHttp) and on httpx, 1,000 URLs with
  50 ms latency each at concurrency 10 and 50: CPU per request, and wall time against the
  ideal time (latency x ceil(1000 / concurrency)); bench/fetch_clients.py.

Each measurement is the best of a few runs; the ratios are what to read. `make bench` then
runs the scale run (bench/scale.py): the whole pipeline over 1,000 and 10,000 documents.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from bench.fetch_clients import compare_clients
from tests.toolkit.http_site import random_words
from {{ cookiecutter.package_name }}.app import (
    Settings,
)
from {{ cookiecutter.package_name }}.pipeline import (
    minhash,
)
from {{ cookiecutter.package_name }}.pipeline.activities.fingerprint import (
    FingerprintActivities,
    FingerprintState,
    signature_memo_key,
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
    SqliteStateStore,
)

DOCUMENTS, WORDS, CHUNK = 48, 2000, 4
PARAMS = MinHashParams()
REPEATS = 3


def best_of(repeats: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeats))


def texts() -> list[str]:
    return [random_words(WORDS, f"bench-{i}") for i in range(DOCUMENTS)]


def chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def on_executor(executor: Executor, corpus: list[str]) -> float:
    started = time.perf_counter()
    futures = [
        executor.submit(minhash.signatures, chunk, PARAMS.num_perm, PARAMS.shingle_size)
        for chunk in chunks(corpus)
    ]
    for future in futures:
        future.result()
    return time.perf_counter() - started


async def on_pool(pool: CpuPool, corpus: list[str]) -> float:
    started = time.perf_counter()
    await asyncio.gather(
        *(
            pool.run(minhash.signatures, c, PARAMS.num_perm, PARAMS.shingle_size)
            for c in chunks(corpus)
        )
    )
    return time.perf_counter() - started


async def cpu_stage(corpus: list[str]) -> dict[str, float]:
    cores = os.cpu_count() or 1
    results = {}
    for processes in (1, cores):
        with CpuPool(processes) as pool:
            await on_pool(pool, corpus[:CHUNK])  # start the processes before timing
            times = [await on_pool(pool, corpus) for _ in range(REPEATS)]
        results[f"processes={processes}"] = min(times)
    with ThreadPoolExecutor(cores) as threads:
        results[f"threads={cores}"] = best_of(REPEATS, lambda: on_executor(threads, corpus))
    return results


async def fingerprint_run(directory: Path, corpus: list[str], *, checkpoint_every: int) -> float:
    """One fingerprint activity over the corpus on a fresh store (nothing memoized)."""
    path = directory / f"store-{time.monotonic_ns()}.db"
    async with SqliteStateStore(path) as store:
        documents = []
        for i, text in enumerate(corpus):
            body = text.encode()
            sha256 = hashlib.sha256(body).hexdigest()
            await store.put(body_key(sha256), body)
            documents.append(DocumentRef(url=f"u{i}", sha256=sha256, bytes=len(body), words=WORDS))
        settings = Settings(_env_file=None)
        with CpuPool() as pool:
            await on_pool(pool, corpus[:CHUNK])
            activities = FingerprintActivities(
                store,
                pool,
                chunk_size=settings.cpu_chunk_size,
                checkpoint_every_items=checkpoint_every,
                checkpoint_every_seconds=settings.checkpoint_every_seconds,
                memo_ttl_seconds=settings.memo_ttl_seconds,
            )
            listed = FetchResult(documents=documents).model_dump_json().encode()
            await store.put("documents:bench", listed)
            request = FingerprintRequest(
                documents_key="documents:bench", signatures_key="signatures:bench", minhash=PARAMS
            )
            started = time.perf_counter()
            await ActivityEnvironment().run(activities.fingerprint_documents, request)
            return time.perf_counter() - started


async def checkpoint_saves(directory: Path, corpus: list[str], saves: int) -> float:
    """Seconds spent in `saves` checkpoint saves of the full stage-2 state of the corpus."""
    state = FingerprintState(
        signatures={
            hashlib.sha256(t.encode()).hexdigest(): minhash.signature(t[:2000]) for t in corpus
        }
    )
    async with SqliteStateStore(directory / "checkpoint.db") as store:
        checkpoint = Checkpoint(store, "bench", FingerprintState, every_items=1, every_seconds=1)
        for _ in range(saves):
            await checkpoint.save(state)
        return checkpoint.save_seconds


async def memo_hit_vs_compute(directory: Path, text: str) -> tuple[float, float]:
    async with SqliteStateStore(directory / "memo.db") as store:
        memo = Memo(store, ttl_seconds=3600)
        key = signature_memo_key(hashlib.sha256(text.encode()).hexdigest(), PARAMS)
        started = time.perf_counter()
        value = minhash.signature(text, PARAMS.num_perm, PARAMS.shingle_size)
        compute = time.perf_counter() - started
        await memo.put(key, value)
        rounds = 200
        started = time.perf_counter()
        for _ in range(rounds):
            assert await memo.get(key) == value
        hit = (time.perf_counter() - started) / rounds
    return compute, hit


def row(name: str, value: str, note: str = "") -> None:
    print(f"  {name:<38} {value:>12}  {note}")


async def main() -> None:
    cores = os.cpu_count() or 1
    corpus = texts()
    print(f"{cores} cores; {DOCUMENTS} documents x {WORDS} words, MinHash {PARAMS.num_perm} perms")

    print("\nCPU stage (the GIL: threads vs processes)")
    cpu = await cpu_stage(corpus)
    serial = cpu["processes=1"]
    for name, seconds in cpu.items():
        row(name, f"{seconds:.2f}s", f"speedup {serial / seconds:.2f}x")
    row("target: all cores", f">= {0.9 * cores:.1f}x")

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        every = DOCUMENTS // 6
        print(f"\nCheckpoints (fingerprint activity; on: a save every {every} documents)")
        runs: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(REPEATS):  # interleaved, so drift on a busy machine hits both
            runs["off"].append(await fingerprint_run(directory, corpus, checkpoint_every=10**9))
            runs["on"].append(await fingerprint_run(directory, corpus, checkpoint_every=every))
        off, on = min(runs["off"]), min(runs["on"])
        row("checkpoints off", f"{off:.2f}s")
        row("checkpoints on", f"{on:.2f}s", f"side by side {100 * (on - off) / off:+.1f}%")
        saving = await checkpoint_saves(directory, corpus, DOCUMENTS // every)
        overhead = f"{100 * saving / off:.2f}% of the stage (target <= 3%)"
        row(f"time in those {DOCUMENTS // every} saves", f"{saving * 1000:.1f}ms", overhead)

        print("\nMemoization (one document)")
        compute, hit = await memo_hit_vs_compute(directory, corpus[0])
        row("compute", f"{compute * 1000:.2f}ms")
        row("memo hit", f"{hit * 1000:.3f}ms", f"{compute / hit:.0f}x faster (target >= 100x)")

        await compare_clients(directory)


if __name__ == "__main__":
    asyncio.run(main())

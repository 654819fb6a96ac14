"""Module 3, solved: the chunks run in a pool of processes, one per core."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from {{ cookiecutter.package_name }}.pipeline.minhash import (
        signature,
    )

NUM_PERM = 128
SHINGLE_SIZE = 3
CHUNK_SIZE = 2  # texts per task sent to the executor


@dataclass
class Fingerprints:
    signatures: list[list[int]]
    pids: list[int]  # the process that computed each chunk
    seconds: float  # inside the activity, from the first chunk sent to the last one back


def make_executor(workers: int) -> Executor:
    """What runs the chunks: the check calls this once and hands it to CpuActivities."""
    # "spawn": a fresh interpreter per child. Forking a process that runs the SDK's native
    # threads can copy a lock that one of them holds, and the child deadlocks on it.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def signatures_of(texts: list[str]) -> tuple[int, list[list[int]]]:
    """One chunk of CPU work (pure Python: it holds the GIL while it runs)."""
    return os.getpid(), [signature(text, NUM_PERM, SHINGLE_SIZE) for text in texts]


class CpuActivities:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    @activity.defn
    async def fingerprint(self, texts: list[str]) -> Fingerprints:
        loop = asyncio.get_running_loop()
        chunks = [texts[i : i + CHUNK_SIZE] for i in range(0, len(texts), CHUNK_SIZE)]
        started = time.perf_counter()
        done = await asyncio.gather(
            *(
                # The function and its arguments are pickled to the child: a module-level
                # function pickles (by name), a lambda does not.
                loop.run_in_executor(self.executor, signatures_of, chunk)
                for chunk in chunks
            )
        )
        seconds = time.perf_counter() - started
        return Fingerprints(
            signatures=[sig for _, sigs in done for sig in sigs],
            pids=[pid for pid, _ in done],
            seconds=seconds,
        )


@workflow.defn
class FingerprintWorkflow:
    @workflow.run
    async def run(self, texts: list[str]) -> Fingerprints:
        return await workflow.execute_activity_method(
            CpuActivities.fingerprint,
            texts,
            start_to_close_timeout=timedelta(seconds=120),
            # A bug is not transient: in the workshop it fails the workflow at once,
            # instead of being retried for ever (the default).
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


WORKFLOWS = [FingerprintWorkflow]

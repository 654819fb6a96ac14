"""What this service runs: the one place where the runtime meets the sample.

The runtime (`runtime/`) knows no workflow. It asks this module for the settings class
to load, what a worker registers (`register`) and what `run` does (`add_run_arguments`,
`run`). To add a workflow or an activity, add it to `register`; to replace the sample
with your own code, point these names at your package instead (docs/make-it-yours.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from temporalio.common import VersioningBehavior

from .pipeline import starter
from .pipeline.activities.duplicates import DuplicateActivities
from .pipeline.activities.fetch import FetchActivities
from .pipeline.activities.fingerprint import FingerprintActivities
from .pipeline.settings import PipelineSettings
from .pipeline.workflows import BatchWorkflow, PipelineWorkflow
from .runtime.http import FetchPolicy
from .runtime.pool import CpuPool
from .runtime.store import StateStore
from .runtime.worker import Registration, Service

# Each workflow's behaviour under Worker Versioning (WORKER_VERSIONING, off by default; the
# README's "Versioned deploys"). AUTO_UPGRADE: running workflows move to each new build, so
# a change must replay old histories (the replay gate, `make replay`) or sit behind
# `workflow.patched`. PINNED instead keeps a workflow on the build it started on, which
# needs that build's workers kept running until it ends.
VERSIONING: dict[type, VersioningBehavior] = {
    PipelineWorkflow: VersioningBehavior.AUTO_UPGRADE,
    BatchWorkflow: VersioningBehavior.AUTO_UPGRADE,
}

Settings = PipelineSettings
"""The settings the worker and `run` load: the runtime's plus the sample's section."""


def register(settings: Settings, store: StateStore, pool: CpuPool) -> Registration:
    """Every workflow and activity a worker of this service runs."""
    fetch = FetchActivities(
        store,
        policy=FetchPolicy(  # the guarded GET's limits (runtime/http.py)
            timeout_seconds=settings.fetch_timeout_seconds,
            deadline_seconds=settings.fetch_deadline_seconds,
            max_bytes=settings.fetch_max_bytes,
            max_redirects=settings.fetch_max_redirects,
            allowed_networks=settings.fetch_allowed_networks,
        ),
        concurrency=settings.fetch_concurrency,
        retries=settings.fetch_retries,
    )
    fingerprint = FingerprintActivities(
        store,
        pool,
        chunk_size=settings.cpu_chunk_size,
        checkpoint_every_items=settings.checkpoint_every_items,
        checkpoint_every_seconds=settings.checkpoint_every_seconds,
        memo_ttl_seconds=settings.memo_ttl_seconds,
    )
    duplicates = DuplicateActivities(store, pool)
    return Registration(
        workflows=[PipelineWorkflow, BatchWorkflow],
        activities=[
            fetch.fetch_documents,
            fingerprint.fingerprint_documents,
            duplicates.group_near_duplicates,
        ],
        versioning=VERSIONING,
    )


SERVICE = Service(settings=Settings, register=register)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `python -m <package> run`."""
    starter.add_arguments(parser)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """`python -m <package> run`: start the sample's workflow, wait, print the result."""
    return starter.main(settings, args)


def demo_arguments(urls_file: Path) -> list[str]:
    """`run`'s arguments in `make run` and `make dev`: the URLs of the local sample site."""
    return ["--urls-file", str(urls_file)]

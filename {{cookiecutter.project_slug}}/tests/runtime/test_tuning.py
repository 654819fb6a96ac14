"""Tuner and Worker Versioning from the settings, on the real dev server.

Every worker here runs the probe service (tests/runtime/probe.py), whatever sample the
project keeps: a resource-based worker with autoscaled pollers runs a workflow, and a
versioned worker runs one once its version is made current.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import VersioningBehavior as VersioningBehaviorProto
from temporalio.client import Client
from temporalio.common import VersioningBehavior

from {{ cookiecutter.package_name }}.runtime.settings import (
    RuntimeSettings,
)
from {{ cookiecutter.package_name }}.runtime.worker import (
    Registration,
    StartError,
    deployment_config,
    tuning,
)

from ..toolkit.observe import identities
from ..toolkit.versioning import set_current_version
from ..toolkit.worker import running_worker
from . import probe
from .test_worker import probe_env, start_probe


def settings(tmp_path: Path, **values: Any) -> RuntimeSettings:
    return RuntimeSettings(
        _env_file=None, state_store_url=f"sqlite:///{tmp_path / 's.db'}", **values
    )


def test_fixed_slots_by_default(tmp_path: Path) -> None:
    options = tuning(settings(tmp_path, max_concurrent_activities=4))
    assert options == {"max_concurrent_activities": 4, "max_concurrent_workflow_tasks": None}


def test_resource_based_tuner_and_autoscaled_pollers(tmp_path: Path) -> None:
    options = tuning(
        settings(
            tmp_path, worker_tuner="resource-based", target_cpu_usage=0.5, poller_autoscaling=True
        )
    )
    assert sorted(options) == [
        "activity_task_poller_behavior",
        "tuner",
        "workflow_task_poller_behavior",
    ]


def test_versioning_needs_every_workflow_to_state_its_behaviour(tmp_path: Path) -> None:
    versioned = settings(tmp_path, worker_versioning=True, build_id="b1")
    with pytest.raises(StartError, match="ProbeWorkflow state no versioning behaviour"):
        deployment_config(versioned, Registration(workflows=[probe.ProbeWorkflow], activities=[]))
    config = deployment_config(
        versioned,
        Registration(
            workflows=[probe.ProbeWorkflow],
            activities=[],
            versioning={probe.ProbeWorkflow: VersioningBehavior.PINNED},
        ),
    )
    assert config is not None
    assert config.version.build_id == "b1"
    assert config.default_versioning_behavior == VersioningBehavior.PINNED
    assert deployment_config(settings(tmp_path), Registration([probe.ProbeWorkflow], [])) is None


async def test_a_resource_based_worker_runs_a_workflow(
    client: Client, tmp_path: Path, task_queue: str
) -> None:
    env = probe_env(
        client,
        task_queue,
        f"sqlite:///{tmp_path / 's.db'}",
        worker_tuner="resource-based",
        poller_autoscaling=True,
    )
    async with running_worker(env, service=probe.SPEC) as worker:
        assert "tuner=resource-based" in worker.log
        handle = await start_probe(client, task_queue, items=4)
        assert (await asyncio.wait_for(handle.result(), 60)).total == probe.expected_total(4)
        assert await worker.terminate() == 0, worker.log
    assert await identities(handle, probe.ACTIVITY) == {worker.identity}


async def test_a_versioned_worker_runs_workflows_once_its_version_is_current(
    client: Client, tmp_path: Path, task_queue: str
) -> None:
    deployment, build_id = f"probe-{uuid.uuid4().hex[:8]}", "build-1"
    env = probe_env(
        client,
        task_queue,
        f"sqlite:///{tmp_path / 's.db'}",
        worker_versioning=True,
        deployment_name=deployment,
        build_id=build_id,
    )
    async with running_worker(env, service=probe.SPEC) as worker:
        assert f"versioning={deployment}/{build_id}" in worker.log
        handle = await start_probe(client, task_queue, items=3)  # waits: no current version
        await set_current_version(client, deployment, build_id)
        assert (await asyncio.wait_for(handle.result(), 60)).total == probe.expected_total(3)
        assert await worker.terminate() == 0, worker.log
    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
    assert info.behavior == VersioningBehaviorProto.VERSIONING_BEHAVIOR_AUTO_UPGRADE
    assert info.deployment_version.deployment_name == deployment
    assert info.deployment_version.build_id == build_id

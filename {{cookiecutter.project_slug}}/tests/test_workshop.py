"""The workshop's checks (docs/workshop/check.py) pass on the solutions.

With WORKSHOP_EXERCISES=1 they are also shown to fail on the untouched exercises (the
template's tests do that; it adds about a minute, most of it module 5 waiting in vain).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from {{ cookiecutter.package_name }}.runtime.devstack import (
    serve_samples,
)

from .conftest import address_of, free_port, run_process, running_worker, service_env, worker_log

EXERCISES = os.environ.get("WORKSHOP_EXERCISES") == "1"
exercises_only = pytest.mark.skipif(
    not EXERCISES, reason="the exercises' failing checks run with WORKSHOP_EXERCISES=1"
)


async def run_check(
    module: int,
    *,
    solution: bool,
    env: dict[str, str] | None = None,
    address: str | None = None,
) -> str:
    """Run `python -m docs.workshop.check` and return its output; assert its exit code."""
    code, text = await run_process(
        sys.executable,
        "-m",
        "docs.workshop.check",
        str(module),
        *(["--solution"] if solution else []),
        *(["--address", address] if address else []),
        env=env,
        timeout=180,
    )
    if solution:
        assert code == 0, text
        assert f"PASS: module {module}" in text, text
    else:
        assert code == 1, text
        assert "NOT YET: " in text, text
    return text


async def run_checks(*, solution: bool, address: str | None = None) -> None:
    """Modules 2 to 5 side by side (each with task queues of its own): most of their time is
    spent waiting for timeouts, not computing. On the server of `address`, or each on a dev
    server of its own, as a learner runs them."""
    results = await asyncio.gather(
        *(run_check(module, solution=solution, address=address) for module in (2, 3, 4, 5)),
        return_exceptions=True,
    )
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:
        raise failures[0]


@pytest.mark.slow(seconds=13)  # four modules' checks, side by side
async def test_checks_pass_on_the_solutions(temporal_env: WorkflowEnvironment) -> None:
    """On the session's dev server (`--address`), sparing four of their own; the exercises'
    run below starts theirs, the learners' default."""
    await run_checks(solution=True, address=address_of(temporal_env.client))


@exercises_only
async def test_checks_fail_on_the_exercises() -> None:
    await run_checks(solution=False)


async def test_module_1_check_reads_the_pipeline_run(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Module 1 as a learner does it: a worker, `run --workflow-id workshop-1`, the check."""
    address = address_of(temporal_env.client)
    env = service_env(
        address,
        task_queue=f"test-{uuid.uuid4().hex[:8]}",
        state_store_url=f"sqlite:///{tmp_path / 'state.db'}",  # never the bake's default store
    )
    async with running_worker(env) as worker:
        with serve_samples(free_port()) as urls:
            code, output = await run_process(
                sys.executable,
                "-m",
                "{{ cookiecutter.package_name }}",
                "run",
                "--workflow-id",
                "workshop-1",
                *urls,
                env=env,
            )
            assert code == 0, f"{output}\nworker:\n{worker_log(worker)}"
        worker.send_signal(signal.SIGTERM)
        await worker.wait()
    check_env = {**os.environ, "TEMPORAL_ADDRESS": address}
    text = await run_check(1, solution=True, env=check_env)
    assert "event 5 is EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: right" in text
    assert "the first batch, workshop-1-batch-000000, is fetch_documents: right" in text
    text = await run_check(1, solution=False, env=check_env)
    assert "WORKFLOW_ID is empty" in text


async def test_a_check_on_an_address_without_a_server_stops_with_one_line() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    code, text = await run_process(
        sys.executable, "-m", "docs.workshop.check", "2", "--address", address, timeout=60
    )
    assert code == 2, text  # the check could not run: not the exercise's fault
    assert f"error: no Temporal server at {address}: " in text, text
    assert "NOT YET" not in text, text

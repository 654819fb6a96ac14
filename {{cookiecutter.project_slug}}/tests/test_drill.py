"""The HA drill as a test, on the project's drill case (tests/<sample>/drill_case.py): real
workers, kill -9 of the one holding the case's activity mid-way, SIGTERM of another.

Smaller than `make drill` (three workers with two CPU processes each): two workers with one
each prove the same (another worker takes over; the pool child dies with its group) with
half the process starts, the most of this test's time. It runs on the session's dev server
(`make drill` starts its own)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from drill.case import find_case
from drill.ha import Report, drill

from .conftest import address_of


@pytest.mark.slow(seconds=15)  # five worker processes and three runs
async def test_ha_drill(tmp_path: Path, temporal_env: WorkflowEnvironment) -> None:
    try:
        case = find_case()
    except LookupError as exc:  # a project whose sample is gone and no case written yet
        pytest.skip(str(exc))
    report = Report()
    try:
        await drill(
            tmp_path,
            case=case,
            items=24,
            heartbeat_timeout=2,
            report=report,
            workers=2,
            cpu_processes=1,
            server_address=address_of(temporal_env.client),  # the session's
        )
    finally:  # the drill's output, which pytest shows when the test fails, however it fails
        print("\n".join(report.lines))
    passed = report.passed
    assert passed, "the drill failed (its output is above): " + "; ".join(report.failures)

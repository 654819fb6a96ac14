"""The HA drill as a test, on the project's drill case (tests/<sample>/drill_case.py): three
real workers, kill -9 of the one holding the case's activity mid-way, SIGTERM of another."""

from __future__ import annotations

from pathlib import Path

import pytest

from drill.case import find_case
from drill.ha import Report, drill


async def test_ha_drill(tmp_path: Path) -> None:
    try:
        case = find_case()
    except LookupError as exc:  # a project whose sample is gone and no case written yet
        pytest.skip(str(exc))
    report = Report()
    try:
        await drill(tmp_path, case=case, items=40, heartbeat_timeout=2, report=report)
    finally:  # the drill's output, which pytest shows when the test fails, however it fails
        print("\n".join(report.lines))
    passed = report.passed
    assert passed, "the drill failed (its output is above): " + "; ".join(report.failures)

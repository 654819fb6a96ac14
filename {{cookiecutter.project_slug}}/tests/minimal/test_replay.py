"""Replay the recorded history with today's workflow code.

If a change to `workflows.py` would break workflows that are already running (a
non-deterministic change), this test fails. When the change is intended and no old
workflows are running, re-record with `make history` (tests/minimal/record_history.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.minimal.workflows import (
    StatsWorkflow,
)

from ..toolkit.history import history_files, replay

HISTORIES = Path(__file__).parent / "histories"


def test_the_workflow_has_a_recorded_history() -> None:
    assert [path.stem for path in history_files(HISTORIES)] == ["stats"]


@pytest.mark.parametrize("path", history_files(HISTORIES), ids=lambda path: path.stem)
async def test_recorded_history_replays(path: Path) -> None:
    await replay(path, [StatsWorkflow])

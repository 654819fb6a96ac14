"""Replay the recorded history with today's workflow code.

If a change to `workflows.py` would break workflows that are already running (a
non-deterministic change), this test fails: the replay gate (`make replay`, part of `make
test` and CI). The last two tests prove the gate: an extra activity before the first one
fails it, the same change behind `workflow.patched` passes. When the change is intended and
no old workflows are running, re-record with `make history` (tests/minimal/record_history.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.workflow import NondeterminismError

from {{ cookiecutter.package_name }}.minimal import (
    workflows,
)
from {{ cookiecutter.package_name }}.minimal.workflows import (
    StatsWorkflow,
)

from ..toolkit.history import edited_copy, history_files, replay

HISTORIES = Path(__file__).parent / "histories"


def test_the_workflow_has_a_recorded_history() -> None:
    assert [path.stem for path in history_files(HISTORIES)] == ["stats"]


@pytest.mark.parametrize("path", history_files(HISTORIES), ids=lambda path: path.stem)
async def test_recorded_history_replays(path: Path) -> None:
    await replay(path, [StatsWorkflow])


# The edit: another activity before the workflow's first one (the download).
# (its first lines, down to a line that is there once: the download again is indented deeper)
FIRST_ACTIVITY = """        pages = await workflow.execute_activity_method(
            DownloadActivities.download_pages, request.urls, **download
        )
        try:
"""
EXTRA_ACTIVITY = """await workflow.execute_activity_method(
            StatsActivities.compute_stats,
            ComputeRequest(sha256s=[], rounds=1),
            start_to_close_timeout=timedelta(minutes=1),
        )
"""


async def test_the_gate_fails_on_a_non_deterministic_edit(tmp_path: Path) -> None:
    edit = "        " + EXTRA_ACTIVITY + FIRST_ACTIVITY
    with (
        edited_copy(workflows, FIRST_ACTIVITY, edit, tmp_path) as edited,
        pytest.raises(AssertionError) as caught,
    ):
        await replay(HISTORIES / "stats.json", [edited.StatsWorkflow])
    print(f"the replay gate said: {caught.value}")  # shown with -s (docs/changing-workflows.md)
    assert isinstance(caught.value.__cause__, NondeterminismError), caught.value
    assert "no longer replays" in str(caught.value)


async def test_the_same_edit_behind_patched_replays(tmp_path: Path) -> None:
    patched = '        if workflow.patched("extra-activity"):\n'
    patched += "            " + EXTRA_ACTIVITY.replace("\n", "\n    ").rstrip() + "\n"
    with edited_copy(workflows, FIRST_ACTIVITY, patched + FIRST_ACTIVITY, tmp_path) as edited:
        await replay(HISTORIES / "stats.json", [edited.StatsWorkflow])

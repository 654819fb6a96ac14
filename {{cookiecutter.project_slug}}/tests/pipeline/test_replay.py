"""Replay recorded histories with today's workflow code.

If a change to `workflows.py` would break workflows that are already running (a
non-deterministic change), this test fails. When the change is intended and no old
workflows are running, re-record with `make history` (tests/pipeline/record_history.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.pipeline.workflows import (
    BatchWorkflow,
    PipelineWorkflow,
)

from ..toolkit.history import history_files, replay

HISTORIES = Path(__file__).parent / "histories"


def test_both_workflows_have_a_recorded_history() -> None:
    assert [path.stem for path in history_files(HISTORIES)] == ["batch", "pipeline"]


@pytest.mark.parametrize("path", history_files(HISTORIES), ids=lambda path: path.stem)
async def test_recorded_history_replays(path: Path) -> None:
    await replay(path, [PipelineWorkflow, BatchWorkflow])

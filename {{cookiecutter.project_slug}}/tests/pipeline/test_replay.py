"""Replay recorded histories with today's workflow code.

If a change to `workflows.py` would break workflows that are already running (a
non-deterministic change), this test fails. When the change is intended and no old
workflows are running, re-record with `make history`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from {{ cookiecutter.package_name }}.pipeline.workflows import (
    BatchWorkflow,
    PipelineWorkflow,
)

HISTORIES = Path(__file__).parent / "histories"


@pytest.mark.parametrize("name", ["pipeline", "batch"])
async def test_recorded_history_replays(name: str) -> None:
    text = (HISTORIES / f"{name}.json").read_text(encoding="utf-8")
    history = WorkflowHistory.from_json(f"recorded-{name}", text)
    replayer = Replayer(
        workflows=[PipelineWorkflow, BatchWorkflow], data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None

"""Replay a recorded history with today's workflow code.

If a change to `workflows.py` would break workflows that are already running (a
non-deterministic change), this test fails. When the change is intended and no old
workflows are running, re-record with `make history`.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from {{ cookiecutter.package_name }}.workflows import (
    PipelineWorkflow,
)

HISTORY = Path(__file__).parent / "histories" / "pipeline.json"


async def test_recorded_history_replays() -> None:
    history = WorkflowHistory.from_json("recorded-pipeline", HISTORY.read_text(encoding="utf-8"))
    replayer = Replayer(workflows=[PipelineWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None

"""Log lines in both formats carry the ids of the workflow and activity that wrote them."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from {{ cookiecutter.package_name }}.runtime.logs import (
    LogFormat,
    configure_logging,
)

own_logger = logging.getLogger("tests.own")  # a plain logger, as in the service's modules


@activity.defn
async def logs_in_an_activity() -> None:
    activity.logger.info("from activity.logger")
    own_logger.warning("from a plain logger in the activity")


@workflow.defn(sandboxed=False)
class LogsInAWorkflow:
    @workflow.run
    async def run(self) -> None:
        workflow.logger.info("from workflow.logger")
        await workflow.execute_activity(
            logs_in_an_activity, start_to_close_timeout=timedelta(seconds=30)
        )


@pytest.fixture
def configure() -> Iterator[Callable[[LogFormat], io.StringIO]]:
    """`configure_logging` into a buffer; the logging setup is restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    flags = activity.logger.activity_info_on_message, workflow.logger.workflow_info_on_message

    def configured(log_format: LogFormat) -> io.StringIO:
        buffer = io.StringIO()
        configure_logging("INFO", log_format, buffer)
        return buffer

    yield configured
    root.handlers[:] = handlers
    root.setLevel(level)
    activity.logger.activity_info_on_message, workflow.logger.workflow_info_on_message = flags


async def run_and_log(client: Client, task_queue: str) -> str:
    """Run the logging workflow, then log an error outside it; returns the workflow id."""
    workflow_id = f"logs-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[LogsInAWorkflow],
        activities=[logs_in_an_activity],
    ):
        await client.execute_workflow(LogsInAWorkflow.run, id=workflow_id, task_queue=task_queue)
    try:
        raise ValueError("boom")
    except ValueError:
        own_logger.exception("outside any workflow")
    return workflow_id


def line_with(output: str, text: str) -> str:
    [line] = [line for line in output.splitlines() if text in line]
    return line


async def test_plain_lines_end_with_the_ids(
    client: Client, task_queue: str, configure: Callable[[LogFormat], io.StringIO]
) -> None:
    output = configure("plain")
    workflow_id = await run_and_log(client, task_queue)
    text = output.getvalue()

    ids = f"[workflow_id={workflow_id} activity_type=logs_in_an_activity activity_id=1 attempt=1]"
    assert line_with(text, "from activity.logger").endswith(f"from activity.logger {ids}")
    assert line_with(text, "from a plain logger").endswith(
        f"WARNING tests.own: from a plain logger in the activity {ids}"
    )
    assert line_with(text, "from workflow.logger").endswith(
        f"from workflow.logger [workflow_id={workflow_id} attempt=1]"
    )
    assert line_with(text, "outside any").endswith("ERROR tests.own: outside any workflow")
    assert "ValueError: boom" in text  # the traceback follows its line


async def test_json_lines_have_the_ids_as_fields(
    client: Client, task_queue: str, configure: Callable[[LogFormat], io.StringIO]
) -> None:
    output = configure("json")
    workflow_id = await run_and_log(client, task_queue)
    entries: dict[str, dict[str, Any]] = {}
    for line in output.getvalue().splitlines():
        entry = json.loads(line)  # every line is one JSON object
        entries[entry["message"]] = entry

    activity_ids = {
        "workflow_id": workflow_id,
        "workflow_type": "LogsInAWorkflow",
        "activity_type": "logs_in_an_activity",
        "activity_id": "1",
        "attempt": 1,
        "task_queue": task_queue,
        "namespace": "default",
    }
    for message in ("from activity.logger", "from a plain logger in the activity"):
        assert activity_ids.items() <= entries[message].items()
        assert entries[message]["workflow_run_id"]
    from_workflow = entries["from workflow.logger"]
    assert from_workflow["workflow_id"] == workflow_id
    assert from_workflow["workflow_type"] == "LogsInAWorkflow"
    assert "activity_id" not in from_workflow
    outside = entries["outside any workflow"]
    assert outside["level"] == "ERROR"
    assert outside["logger"] == "tests.own"
    assert "workflow_id" not in outside
    assert outside["exception"].endswith("ValueError: boom")

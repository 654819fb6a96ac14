"""Record workflow histories to JSON, and replay them against today's workflow code.

A change to workflow code that would break workflows already running (a non-deterministic
change: another activity, another order) makes a recorded history fail to replay. Each
sample keeps a few recorded histories (tests/<sample>/histories/*.json), a recorder
(tests/<sample>/record_history.py, run by `make history`) and a test that replays them:

    @pytest.mark.parametrize("path", history_files(HISTORIES), ids=lambda p: p.stem)
    async def test_recorded_history_replays(path: Path) -> None:
        await replay(path, [MyWorkflow])

    # tests/<sample>/record_history.py
    async def run(client: Client, task_queue: str) -> dict[str, WorkflowHandle[Any, Any]]:
        handle = await client.start_workflow(
            MyWorkflow.run, MyInput(...), id="recorded", task_queue=task_queue
        )
        await handle.result()
        return {"my-workflow": handle}

    if __name__ == "__main__":
        asyncio.run(record(HISTORIES, run))
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from {{ cookiecutter.package_name }}.app import (
    SERVICE,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.worker import (
    Service,
)

from .devserver import dev_server
from .worker import in_process_worker

Run = Callable[[Client, str], Awaitable[Mapping[str, WorkflowHandle[Any, Any]]]]
"""Starts the workflows to record on (client, task queue), waits for them, names them."""


def history_files(folder: Path) -> list[Path]:
    """The recorded histories in `folder` (`*.json`), by name: for `pytest.mark.parametrize`."""
    return sorted(folder.glob("*.json"))


async def replay(
    path: Path,
    workflows: Sequence[type],
    *,
    data_converter: DataConverter = pydantic_data_converter,
) -> None:
    """Replay the history at `path` with `workflows`; fails naming the file and the reason."""
    history = WorkflowHistory.from_json(f"recorded-{path.stem}", path.read_text(encoding="utf-8"))
    replayer = Replayer(workflows=workflows, data_converter=data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is not None:
        raise AssertionError(
            f"{path} no longer replays with today's workflow code: {result.replay_failure!r}"
            " (workflows already running would fail the same way; if the change is intended"
            " and none are running, re-record with `make history`)"
        )


async def save(handles: Mapping[str, WorkflowHandle[Any, Any]], folder: Path) -> list[Path]:
    """Write each workflow's history to `<folder>/<name>.json`; the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, handle in handles.items():
        history = await handle.fetch_history()
        path = folder / f"{name}.json"
        path.write_text(history.to_json(), encoding="utf-8")
        print(f"wrote {path} ({len(history.events)} events)")
        written.append(path)
    return written


async def record(
    folder: Path, run: Run, *, service: Service[Any] = SERVICE, **settings: object
) -> list[Path]:
    """Record histories on a fresh dev server: one worker of `service` in this process (an
    empty SQLite store, one pool process, `settings` on top), `run(client, task_queue)`
    starts and finishes the workflows; their histories go to `folder`."""
    async with dev_server() as env:
        with tempfile.TemporaryDirectory() as tmp, CpuPool(1) as pool:
            loaded = service.settings(
                _env_file=None,
                task_queue="record",
                state_store_url=f"sqlite:///{tmp}/state.db",
                **settings,
            )
            async with in_process_worker(env.client, loaded, service=service, pool=pool):
                handles = await run(env.client, loaded.task_queue)
                return await save(handles, folder)

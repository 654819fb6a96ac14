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

`make replay` runs these tests alone: the replay gate, also part of `make test` and CI.
`edited_copy` proves the gate on a workflow of yours: it imports a copy of the workflow
module with an edit, and the test replays the recorded history with the copy
(docs/changing-workflows.md):

    with edited_copy(workflows, "pages = await", EXTRA_ACTIVITY + "pages = await") as edited:
        with pytest.raises(AssertionError) as caught:
            await replay(path, [edited.MyWorkflow])
    assert isinstance(caught.value.__cause__, NondeterminismError)
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import re
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from temporalio import workflow
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
            " (workflows already running would fail the same way: put the change behind"
            " `workflow.patched`, see docs/changing-workflows.md; if no workflow of the old"
            " code runs any more, re-record with `make history`)"
        ) from result.replay_failure


def recorded_workflow_types(folders: Sequence[Path]) -> set[str]:
    """The workflow types of the histories recorded in `folders`."""
    types = set()
    for folder in folders:
        for path in history_files(folder):
            history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
            started = history.events[0].workflow_execution_started_event_attributes
            types.add(started.workflow_type.name)
    return types


def unrecorded_workflows(workflows: Sequence[type], folders: Sequence[Path]) -> list[str]:
    """The workflow types among `workflows` without a recorded history in `folders`: the
    replay gate cannot check them."""
    recorded = recorded_workflow_types(folders)
    return sorted({_workflow_type(cls) for cls in workflows} - recorded)


def _workflow_type(cls: type) -> str:
    """The workflow type name of a workflow class (its `@workflow.defn(name=...)`)."""
    defn = workflow._Definition.must_from_class(cls)  # the SDK has no public accessor
    assert defn.name is not None, f"{cls.__name__} is a dynamic workflow"
    return defn.name


def _absolute_imports(source: str, package: str) -> str:
    """`source` with its relative imports (`from .models import X`) made absolute."""

    def absolute(match: re.Match[str]) -> str:
        dots, rest = match["dots"], match["rest"]
        base = package.rsplit(".", len(dots) - 1)[0] if len(dots) > 1 else package
        return f"{match['indent']}from {base}{'.' + rest if rest else ''} import"

    pattern = r"^(?P<indent>[ \t]*)from (?P<dots>\.+)(?P<rest>[\w.]*) import"
    return re.sub(pattern, absolute, source, flags=re.MULTILINE)


@contextlib.contextmanager
def edited_copy(module: ModuleType, old: str, new: str, folder: Path) -> Iterator[ModuleType]:
    """`module` (a workflow module) copied to `folder` with `old` replaced by `new` (found
    exactly once), imported as a module of its own for the block: its workflows keep their
    names, so they replay the histories of the originals. For tests of the replay gate."""
    source = inspect.getsource(module)
    assert source.count(old) == 1, f"{old!r} is not in {module.__name__} exactly once"
    name = f"edited_{module.__name__.rsplit('.', 1)[-1]}_{uuid.uuid4().hex[:8]}"
    path = folder / f"{name}.py"
    package = module.__name__.rpartition(".")[0]
    path.write_text(_absolute_imports(source.replace(old, new), package), encoding="utf-8")
    # On sys.path for the block: the workflow sandbox imports the module again, by name.
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        copy = importlib.util.module_from_spec(spec)
        sys.modules[name] = copy
        spec.loader.exec_module(copy)
        yield copy
    finally:
        sys.modules.pop(name, None)
        sys.path.remove(str(folder))


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

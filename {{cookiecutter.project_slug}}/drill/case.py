"""What the drill needs to know about a sample: a drill case.

The drill (drill/ha.py) is the same for every workflow: a clean reference run, three gated
workers, kill -9 of the one holding the case's activity mid-way (a checkpoint saved),
result compared with the reference, then SIGTERM of the holder of a second run. A case
says only what is particular to a sample:

    class MyCase(DrillCase[MyResult]):
        activity = "compute_stats"          # the activity killed mid-way; it must checkpoint

        async def start(self, run, task_queue, tag):
            return await run.client.start_workflow(MyWorkflow.run, MyInput(...), ...)

        async def result(self, run, handle, store_url):
            return await handle.result()    # what must equal the reference run's

    CASE = MyCase()

in `tests/<sample>/drill_case.py`; `make drill` finds it there (`find_case`). Optional:
`same` (what "identical to the reference" means), `at_kill` and `checks` (what the sample
can prove about the resumed attempt, e.g. nothing finished before the kill was redone).
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from temporalio.client import Client, WorkflowHandle

from tests.toolkit.gate import Holder
from tests.toolkit.http_site import LocalSite
from tests.toolkit.processes import PROJECT

R = TypeVar("R")
Check = tuple[bool, str]  # passed, what was checked (a line of the drill's report)


@dataclass(frozen=True)
class DrillRun:
    """What a case gets from the drill."""

    client: Client  # the drill's dev server, with the service's data converter
    site: LocalSite  # an HTTP site on 127.0.0.1 (tests/toolkit/http_site.py), if the case needs one
    items: int  # how many items a run has (`make drill`: 48)
    heartbeat_timeout: float  # seconds: bounds how soon a retry starts after the kill
    checkpoint_every: int  # the workers' checkpoint interval, in items
    result_timeout: float  # seconds a run may take (a guard for a broken drill only)


class DrillCase(abc.ABC, Generic[R]):
    """One sample's part of the drill."""

    activity: ClassVar[str]
    """The activity type held and killed mid-way. It must save a `Checkpoint`: the gate
    closes after its first one (tests/toolkit/gate.py)."""

    worker_settings: ClassVar[Mapping[str, object]] = {}
    """Settings for every worker on top of the drill's (e.g. a chunk size)."""

    @abc.abstractmethod
    async def start(self, run: DrillRun, task_queue: str, tag: str) -> WorkflowHandle[Any, Any]:
        """Start a run of `run.items` items on `task_queue`. Runs with the same `tag` must
        do the same work (the reference and the drilled run share one)."""

    @abc.abstractmethod
    async def result(self, run: DrillRun, handle: WorkflowHandle[Any, Any], store_url: str) -> R:
        """Wait for the run to finish (at most `run.result_timeout`); what it produced."""

    def same(self, drilled: R, reference: R) -> bool:
        """Whether the drilled run produced what the reference run did."""
        return drilled == reference

    async def at_kill(self, run: DrillRun, store_url: str, held: Holder, reference: R) -> Any:
        """Read what the store holds right after the kill (the checkpoint is at `held.key`),
        for `checks`: e.g. how many items the checkpoint holds, how many were finished."""
        return None

    def checks(self, run: DrillRun, drilled: R, reference: R, at_kill: Any) -> list[Check]:
        """The sample's own checks on the resumed run (e.g. what was restored, redone)."""
        return []


def find_case(spec: str | None = None) -> DrillCase[Any]:
    """The case at `spec` ("module" or "module:attribute", default attribute `CASE`), or
    the one `tests/*/drill_case.py` of the project. LookupError if there is none, or several."""
    if spec is None:
        found = sorted(PROJECT.glob("tests/*/drill_case.py"))
        if len(found) != 1:
            where = ", ".join(str(path.relative_to(PROJECT)) for path in found) or "none"
            raise LookupError(
                f"the drill needs one tests/<sample>/drill_case.py (found: {where}); write one"
                " (docs/testing.md) or choose with --case MODULE"
            )
        spec = f"tests.{found[0].parent.name}.drill_case"
    module, _, attribute = spec.partition(":")
    case = getattr(importlib.import_module(module), attribute or "CASE")
    if not isinstance(case, DrillCase):
        raise LookupError(f"{spec} is a {type(case).__name__}, not a DrillCase")
    return case

"""Does the replay gate cover every workflow? Each one a worker registers needs a recorded history.

The gate itself is each sample's tests/<sample>/test_replay.py (`make replay`): it replays
the recorded histories against today's workflow code. A workflow without a recorded history
passes it unchecked, so this test names any such workflow, as a skip with the reason (a new
workflow starts without one): record one (a `run` in tests/<yours>/record_history.py, then
`make history`; docs/changing-workflows.md), and the skip becomes a pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.app import (
    SERVICE,
)
from {{ cookiecutter.package_name }}.runtime.pool import (
    CpuPool,
)
from {{ cookiecutter.package_name }}.runtime.store import (
    open_store,
)

from .conftest import make_settings
from .runtime.probe import ProbeWorkflow
from .toolkit.history import unrecorded_workflows

HISTORIES = sorted(Path(__file__).parent.glob("*/histories"))


def test_every_registered_workflow_has_a_recorded_history(tmp_path: Path, pool: CpuPool) -> None:
    settings = make_settings(tmp_path)
    registration = SERVICE.register(settings, open_store(settings.state_store_url), pool)
    unrecorded = unrecorded_workflows(registration.workflows, HISTORIES)
    if unrecorded:
        pytest.skip(
            f"the replay gate cannot check {', '.join(unrecorded)}: no recorded history in"
            " tests/*/histories (record one: docs/changing-workflows.md)"
        )


def test_a_workflow_without_a_recorded_history_is_named() -> None:
    assert unrecorded_workflows([ProbeWorkflow], HISTORIES) == ["ProbeWorkflow"]

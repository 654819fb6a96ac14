"""Slow: every workshop check fails on its exercise and passes on its solution, in a bake.

The generated project's tests/test_workshop.py runs the checks on the solutions; with
WORKSHOP_EXERCISES=1 it also runs them on the untouched exercises and expects NOT YET.
`make workshop-check` is run once each way, as a learner would.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bakery import bake, run_in_own_group

TIMEOUT_S = 900


@pytest.mark.slow
def test_workshop_checks_fail_on_exercises_and_pass_on_solutions(tmp_path: Path) -> None:
    project = bake(tmp_path, {"workshop": "yes"})
    code, output = run_in_own_group(["make", "install"], project, TIMEOUT_S)
    assert code == 0, output[-4000:]

    pytest_command = [".venv/bin/pytest", "-p", "no:cacheprovider", "tests/test_workshop.py"]
    code, output = run_in_own_group(
        ["env", "WORKSHOP_EXERCISES=1", *pytest_command, "-v"], project, TIMEOUT_S
    )
    assert code == 0, output[-8000:]
    assert "SKIPPED" not in output, output[-8000:]
    for name in ("fail_on_the_exercises", "pass_on_the_solutions", "module_1_check"):
        assert re.search(rf"test_\w*{name}\w* PASSED", output), output[-8000:]

    code, output = run_in_own_group(["make", "workshop-check", "M=2"], project, TIMEOUT_S)
    assert code != 0, output[-4000:]
    assert "NOT YET: " in output, output[-4000:]
    code, output = run_in_own_group(
        ["make", "workshop-check", "M=2", "SOLUTION=1"], project, TIMEOUT_S
    )
    assert code == 0, output[-4000:]
    assert "PASS: module 2" in output, output[-4000:]

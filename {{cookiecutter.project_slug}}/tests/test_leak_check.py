"""The suite's own guard: a process a test leaves running fails the run, by name.

tests/toolkit/leak_guard.py (a plugin tests/conftest.py loads) checks at the end of every
session that nothing the tests started (workers, servers, helpers, and the children of any
process group they made) is still alive. Here a throwaway test leaks a process on purpose,
in a pytest of its own with that plugin alone; also under
pytest-xdist (`make test` runs that way), where each xdist worker checks its own processes
and the controller, which must not take its workers for leaks, fails the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .toolkit import leak_guard

PROJECT = Path(__file__).resolve().parent.parent
LEAK_GUARD = leak_guard.__name__  # `-p` takes the plugin by this name


def test_the_suite_loads_the_leak_guard(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin(LEAK_GUARD)


def running(marker: str) -> bool:
    listing = subprocess.run(
        ["ps", "-A", "-ww", "-o", "stat=,args="], capture_output=True, text=True, check=True
    )
    return any(
        marker in line and not line.lstrip().startswith("Z") for line in listing.stdout.splitlines()
    )


@pytest.mark.parametrize("xdist", [[], ["-n", "1"]], ids=["serial", "xdist"])
def test_a_process_left_running_fails_the_run_and_is_named(
    tmp_path: Path, xdist: list[str]
) -> None:
    marker = f"leak-{uuid.uuid4().hex[:8]}"
    probe = tmp_path / "test_probe.py"
    sleeper = f"[sys.executable, '-c', 'import time; time.sleep(300)', {marker!r}]"
    probe.write_text(
        "import subprocess\n"
        "import sys\n\n\n"
        "def test_leaks() -> None:\n"
        f"    subprocess.Popen({sleeper})\n\n\n"
        "def test_leaks_nothing() -> None:\n"  # and a test that does not
        "    pass\n"
    )
    # Its own --basetemp: given none, a pytest makes a numbered folder beside this run's and,
    # on exit, deletes the older ones, a previous run's venvs among them (seen: 40 s).
    options = ["-p", LEAK_GUARD, "-p", "no:cacheprovider", "-q", "-c", os.devnull]
    options += ["--basetemp", str(tmp_path / "basetemp")]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *options, *xdist, "--rootdir", str(tmp_path), str(probe)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "2 passed" in output, output  # the tests themselves passed: the guard failed the run
    assert "processes started by the tests were still running" in output, output
    assert marker in output, output  # named
    assert not running(marker)  # and killed

"""The session's leak check, a pytest plugin: a process a test started that is still alive
at the end fails the run, by name, and is killed (tests/conftest.py loads this plugin).

A leaked worker holds the pipes of whatever runs the suite (`make test`, CI) and hangs it.
This module imports the standard library and pytest only: tests/test_leak_check.py runs
pytest with this plugin alone, in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

import pytest

OWN_GROUPS: set[int] = set()
"""Process groups the tests made (their leaders' pids); the leak check looks in them."""


def leftover_processes() -> list[str]:
    """Processes this test session started that are still alive ("pid command line"):
    descendants of this process, and members of `OWN_GROUPS` (children of a killed worker
    are re-parented, but stay in its group). `ps` works on Linux and macOS alike."""
    lister = subprocess.Popen(
        ["ps", "-A", "-ww", "-o", "pid=,ppid=,pgid=,stat=,args="], stdout=subprocess.PIPE, text=True
    )
    out, _ = lister.communicate(timeout=30)
    rows = [line.split(None, 4) for line in out.splitlines()]
    # Zombies (state Z) have ended already; their parent just has not reaped them yet.
    table = {
        int(r[0]): (int(r[1]), int(r[2]), r[4] if len(r) > 4 else "")
        for r in rows
        if not r[3].startswith("Z")
    }
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found = {pid for pid, (_, pgid, _) in table.items() if pgid in OWN_GROUPS}
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    found.discard(lister.pid)
    # multiprocessing's resource tracker serves this process until it exits; it is not a test's.
    return [
        f"{pid} {table[pid][2]}"
        for pid in sorted(found)
        if pid in table and "multiprocessing.resource_tracker" not in table[pid][2]
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a process a test started outlived it (and kill it, so nothing hangs:
    a leaked worker holds the pipes of whatever runs this suite).

    With pytest-xdist (`-n`), each xdist worker checks its own processes (its descendants and
    its groups, never the other workers') and hands what it found to the controller, which
    starts no test processes itself and fails the run (`pytest_testnodedown`)."""
    config = session.config
    left: list[str] = []
    if not _is_xdist_controller(config):
        left = leftover_processes()
        for line in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
    workeroutput: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports and sets the status
        workeroutput[LEFTOVERS_KEY] = left
        return
    left += _worker_leftovers
    if not left:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    message = "processes started by the tests were still running (killed now):"
    if reporter is not None:
        reporter.write_line(f"\nERROR: {message}", red=True)
        for line in left:
            reporter.write_line(f"  {line}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


LEFTOVERS_KEY = "leftover_processes"
_worker_leftovers: list[str] = []  # in the xdist controller: what its workers found


def _is_xdist_controller(config: pytest.Config) -> bool:
    """True in the process that runs pytest-xdist's workers (and no test)."""
    return config.pluginmanager.has_plugin("dsession")


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: only called with `-n`
def pytest_testnodedown(node: Any, error: object) -> None:
    """In the xdist controller: keep what a finished worker's leak check found."""
    found = getattr(node, "workeroutput", {}).get(LEFTOVERS_KEY, [])
    name = node.gateway.id if hasattr(node, "gateway") else "?"
    _worker_leftovers.extend(f"{line} (xdist worker {name})" for line in found)

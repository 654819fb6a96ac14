"""The warm launcher (tests/toolkit/launcher.py): its children are the processes a cold
start makes (argv, folder, environment, group, path, exit codes), only cheaper to start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from .toolkit import launcher, leak_guard
from .toolkit.launcher import PIPE, STDOUT, ChildProcess, start_python
from .toolkit.processes import PACKAGE, service_env

# What a process can tell about how it was started. The project's modules must not be
# imported yet: the launcher imported them to warm up, then forgot them.
DESCRIBE = """
import json, os, sys
print(json.dumps(dict(
    argv=sys.argv,
    cwd=os.getcwd(),
    setting=os.environ.get("LAUNCHER_TEST_SETTING"),
    leads_its_group=os.getpgid(0) == os.getpid(),
    path0=sys.path[0],
    path=sys.path[1:],
    main=sys.modules["__main__"].__dict__.get("__name__"),
    project_modules=sorted(m for m in sys.modules if m.split(".")[0] in ("PACKAGE", "tests")),
    stdin=sys.stdin.read(),
)))
""".replace("PACKAGE", PACKAGE)


def launcher_pid() -> int:
    running = launcher._launcher
    if running is None:
        pytest.skip(f"no launcher in this run ({launcher.COLD_START_VARIABLE} is set)")
    return running.pid


async def output_of(process: ChildProcess) -> tuple[int, str]:
    assert process.stdout is not None
    out = await process.stdout.read()
    return await process.wait(), out.decode()


async def test_a_child_is_what_a_cold_start_makes(tmp_path: Path) -> None:
    env = {**service_env(), "LAUNCHER_TEST_SETTING": "from the test"}
    args = ["-c", DESCRIBE, "one", "two"]
    warm = await start_python(args, env=env, cwd=tmp_path, stdout=PIPE)
    cold = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env,
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=PIPE,
        start_new_session=True,
    )
    warm_code, warm_out = await output_of(warm)
    cold_code, cold_out = await output_of(cold)
    assert (warm_code, json.loads(warm_out)) == (cold_code, json.loads(cold_out))
    assert json.loads(warm_out)["setting"] == "from the test"
    assert json.loads(warm_out)["leads_its_group"]


async def test_a_child_comes_from_the_launcher() -> None:
    parent = launcher_pid()
    process = await start_python(
        ["-c", "import os; print(os.getppid())"], env=service_env(), stdout=PIPE
    )
    assert await output_of(process) == (0, f"{parent}\n")


async def test_a_module_runs_as_main_with_its_file_in_argv() -> None:
    launcher_pid()
    process = await start_python(
        ["-m", f"{PACKAGE}.__main__", "--help"], env=service_env(), stdout=PIPE
    )
    code, out = await output_of(process)
    assert code == 0, out
    assert f"python -m {PACKAGE}" in out  # argparse's usage line: the CLI ran as __main__


@pytest.mark.parametrize(
    ("code", "expected", "printed"),
    [
        ("import sys; sys.exit(3)", 3, ""),
        ("import sys; sys.exit('no way')", 1, "no way"),
        ("raise ValueError('broken')", 1, "ValueError: broken"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL, ""),
    ],
    ids=["exit-3", "exit-message", "exception", "killed"],
)
async def test_exit_codes_are_the_interpreters(code: str, expected: int, printed: str) -> None:
    launcher_pid()
    process = await start_python(["-c", code], env=service_env(), stdout=PIPE, stderr=STDOUT)
    exit_code, out = await output_of(process)
    assert exit_code == expected, out
    assert printed in out


async def test_another_interpreter_setting_starts_cold() -> None:
    parent = launcher_pid()
    env = {**service_env(), "PYTHONOPTIMIZE": "1"}  # -O: not what the launcher runs
    process = await start_python(
        ["-c", "import os, sys; print(os.getppid(), sys.flags.optimize)"], env=env, stdout=PIPE
    )
    code, out = await output_of(process)
    assert code == 0
    assert out.split() == [str(os.getpid()), "1"]
    assert int(out.split()[0]) != parent


async def test_the_leak_check_finds_a_child_left_running_until_it_ends() -> None:
    """A child is the launcher's (under xdist, the controller's), not this process's: the
    leak check of the process that asked for it finds it by its group all the same."""
    launcher_pid()
    process = await start_python(["-c", "import time; time.sleep(300)"], env=service_env())
    try:
        assert any(line.split()[0] == str(process.pid) for line in leak_guard.leftover_processes())
    finally:
        process.send_signal(signal.SIGKILL)
    assert await process.wait() == -signal.SIGKILL
    assert process.pid not in leak_guard.OWN_GROUPS  # it ended: its pid may be reused

"""The generated pre-commit hooks run offline from the project's venv and catch real problems."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bakery import bake, run_in_own_group

# An undefined name (ruff check fails: F821) in code that ruff format would rewrite.
BAD_CODE = "x = {  'a':undefined_name }\n"
TIMEOUT_S = 600  # a guard for a broken test only: far above what the slowest step needs


def run(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run ``command`` in ``cwd`` in a process group of its own; return its code and output.

    ``env`` is added to the clean environment. On a timeout the whole group is killed and
    the test fails with the output so far.
    """
    settings = [f"{name}={value}" for name, value in env.items()]
    code, output = run_in_own_group(["env", *settings, *command], cwd, TIMEOUT_S)
    assert code is not None, f"`{' '.join(command)}` ran over {TIMEOUT_S} s:\n{output}"
    return code, output


@pytest.mark.slow
def test_pre_commit_hooks_pass_on_a_fresh_bake_and_fail_on_bad_code(tmp_path: Path) -> None:
    project = bake(tmp_path / "out", {"ci": "github"})
    env = {
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    code, output = run(["make", "install"], project, env)
    assert code == 0, output
    pre_commit = [str(project / ".venv" / "bin" / "pre-commit"), "run", "--all-files"]
    for command in (["git", "init", "-q"], ["git", "add", "-A"]):
        code, output = run(command, project, env)
        assert code == 0, f"`{' '.join(command)}` exited {code}:\n{output}"

    code, clean = run(pre_commit, project, env)
    assert code == 0, clean
    assert "ruff check" in clean, clean
    assert "ruff format" in clean, clean
    assert re.search(r"^mypy\.+Passed$", clean, re.MULTILINE), clean

    bad = project / "src" / "scratch.py"
    bad.write_text(BAD_CODE, encoding="utf-8")
    code, output = run(["git", "add", "-A"], project, env)
    assert code == 0, f"`git add -A` exited {code}:\n{output}"
    code, caught = run(pre_commit, project, env)
    assert code != 0, caught
    assert "F821" in caught, caught
    assert bad.read_text(encoding="utf-8") == 'x = {"a": undefined_name}\n', caught

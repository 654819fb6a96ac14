"""The generated pre-commit hooks run offline from the project's venv and catch real problems."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from bakery import bake, clean_env

# An undefined name (ruff check fails: F821) in code that ruff format would rewrite.
BAD_CODE = "x = {  'a':undefined_name }\n"


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``cwd`` and return its result, output captured."""
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.slow
def test_pre_commit_hooks_pass_on_a_fresh_bake_and_fail_on_bad_code(tmp_path: Path) -> None:
    project = bake(tmp_path / "out", {"ci": "github"})
    env = {
        **clean_env(),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    installed = run(["make", "install"], project, env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    pre_commit = [str(project / ".venv" / "bin" / "pre-commit"), "run", "--all-files"]
    for command in (["git", "init", "-q"], ["git", "add", "-A"]):
        assert run(command, project, env).returncode == 0

    clean = run(pre_commit, project, env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "ruff check" in clean.stdout
    assert "ruff format" in clean.stdout
    assert re.search(r"^mypy\.+Passed$", clean.stdout, re.MULTILINE), clean.stdout

    bad = project / "src" / "scratch.py"
    bad.write_text(BAD_CODE, encoding="utf-8")
    assert run(["git", "add", "-A"], project, env).returncode == 0
    caught = run(pre_commit, project, env)
    assert caught.returncode != 0, caught.stdout
    assert "F821" in caught.stdout
    assert bad.read_text(encoding="utf-8") == 'x = {"a": undefined_name}\n'

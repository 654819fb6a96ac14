"""The GitHub files against real validators, offline.

- .github/workflows/*.yml and .github/dependabot.yml: `check-jsonschema` against the schemas
  of GitHub workflows and of Dependabot's configuration (vendored in check-jsonschema);
- the same folder: `zizmor --offline`, a security linter for GitHub Actions (unpinned
  actions, credentials left in the checkout, template injection, excessive permissions,
  Dependabot without a cooldown, ...). It must report nothing.

Each is also shown to fail on a file with one mistake in it.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from check_jsonschema.cli.main_command import main as check_jsonschema_main  # type: ignore[import-untyped]

from .conftest import run_in_group

PROJECT = Path(__file__).resolve().parents[1]
GITHUB = PROJECT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent  # the venv's: the validators are dev dependencies
TIMEOUT = 300.0  # a guard for a broken tool only


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is not in {BIN}: run `make install`"
    return str(path)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return run_in_group(list(command), timeout=TIMEOUT)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {result.returncode}:\n{result.stdout}{result.stderr}"


def check(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return check_jsonschema_in_process("--builtin-schema", schema, str(path))


def check_jsonschema_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """`check-jsonschema ARGS`, its own command-line entry point called in this process:
    the same checks and output as the command, without a Python start and its imports
    (about 0.5 s of CPU) for each file."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = check_jsonschema_main.main(
                list(args), prog_name="check-jsonschema", standalone_mode=False
            )
        except SystemExit as exit_:  # click exits on a usage error
            code = exit_.code
    return subprocess.CompletedProcess(
        ["check-jsonschema", *args], int(code or 0), out.getvalue(), err.getvalue()
    )


def zizmor(folder: Path) -> subprocess.CompletedProcess[str]:
    return run(tool("zizmor"), "--offline", "--no-progress", str(folder))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_the_github_workflow_schema(workflow: Path) -> None:
    result = check("vendor.github-workflows", workflow)
    assert result.returncode == 0, output(result)


def test_dependabot_passes_its_schema() -> None:
    result = check("vendor.dependabot", GITHUB / "dependabot.yml")
    assert result.returncode == 0, output(result)


def test_zizmor_finds_nothing() -> None:
    assert WORKFLOWS
    result = zizmor(GITHUB)
    assert result.returncode == 0, output(result)


def test_each_validator_fails_on_a_mistake(tmp_path: Path) -> None:
    copy = tmp_path / ".github"
    shutil.copytree(GITHUB, copy)
    workflow = copy / "workflows" / WORKFLOWS[0].name
    text = workflow.read_text(encoding="utf-8")
    # An action by tag instead of a commit SHA: a tag can be moved to other code.
    first_pin = next(line for line in text.splitlines() if "uses: actions/checkout@" in line)
    unsafe = text.replace(first_pin, first_pin.split("@")[0] + "@v5")
    assert unsafe != text
    workflow.write_text(unsafe, encoding="utf-8")
    result = zizmor(copy)
    assert result.returncode != 0, output(result)
    assert "unpinned-uses" in result.stdout, output(result)

    misspelt = tmp_path / "test.yml"
    misspelt.write_text(text.replace("runs-on:", "run-on:"), encoding="utf-8")
    result = check("vendor.github-workflows", misspelt)
    assert result.returncode != 0, output(result)

    dependabot = tmp_path / "dependabot.yml"
    source = (GITHUB / "dependabot.yml").read_text(encoding="utf-8")
    dependabot.write_text(source.replace("interval: weekly", "interval: fortnightly"), "utf-8")
    result = check("vendor.dependabot", dependabot)
    assert result.returncode != 0, output(result)

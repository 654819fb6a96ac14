"""The generated CI, Dependabot and pre-commit files: parsed and checked for what they promise."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from bakery import CHOICES, TEMPLATE_DIR, bake

WORKFLOWS = ".github/workflows"
# owner/repo[/path]@<full commit SHA> # vX.Y.Z
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+\s*$")
PYTHONS = CHOICES["python_version"]


@pytest.fixture(scope="module", params=PYTHONS)
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bake a project with ci=github and each python_version."""
    answers = {"ci": "github", "python_version": request.param}
    return bake(tmp_path_factory.mktemp("ci"), answers)


def load(path: Path) -> dict[str, Any]:
    """Return the YAML mapping in ``path``."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def workflows(project: Path) -> list[Path]:
    """Return the project's workflow files; there is at least one."""
    found = sorted((project / WORKFLOWS).glob("*.y*ml"))
    assert found, f"no workflow in {WORKFLOWS}"
    return found


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the steps of every job of ``workflow``."""
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_every_action_is_pinned_to_a_commit_sha_with_its_version(project: Path) -> None:
    used = 0
    for path in workflows(project):
        for step in steps(load(path)):
            if "uses" in step:
                assert PINNED.match(step["uses"]), f"{path.name}: {step['uses']} is not a SHA pin"
                used += 1
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.match(r"\s*(-\s*)?uses:", line):
                assert VERSION_COMMENT.search(line), f"{path.name}: no `# vX.Y.Z` on: {line}"
    assert used >= 2  # checkout and setup-python at least


def test_permissions_are_read_only(project: Path) -> None:
    for path in workflows(project):
        workflow = load(path)
        assert workflow["permissions"] == {"contents": "read"}, path.name
        for name, job in workflow["jobs"].items():
            granted = job.get("permissions", {})
            assert isinstance(granted, dict), f"{path.name}: job {name}: {granted!r}"
            assert set(granted.values()) <= {"read", "none"}, f"{path.name}: job {name}"


def test_matrix_covers_the_supported_pythons(project: Path) -> None:
    chosen = load(project / ".cookiecutter.json")["cookiecutter"]["python_version"]
    supported = PYTHONS[PYTHONS.index(chosen) :]
    (job,) = load(project / WORKFLOWS / "test.yml")["jobs"].values()
    assert job["strategy"]["matrix"]["python-version"] == supported
    setup = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
    assert [s["with"]["python-version"] for s in setup] == ["${{ matrix.python-version }}"]


def test_job_installs_redis_and_make_then_runs_make_test(project: Path) -> None:
    (job,) = load(project / WORKFLOWS / "test.yml")["jobs"].values()
    commands = [step["run"] for step in job["steps"] if "run" in step]
    install = next(i for i, run in enumerate(commands) if "apt-get install" in run)
    assert {"redis-server", "make"} <= set(commands[install].split())
    test = next(i for i, run in enumerate(commands) if re.search(r"^make test\b", run, re.M))
    assert install < test


def test_dependabot_updates_uv_and_actions(project: Path) -> None:
    config = load(project / ".github" / "dependabot.yml")
    assert config["version"] == 2
    ecosystems = {update["package-ecosystem"]: update for update in config["updates"]}
    assert set(ecosystems) == {"uv", "github-actions"}
    for update in ecosystems.values():
        assert update["directory"] == "/"
        assert update["schedule"]["interval"] in {"daily", "weekly", "monthly"}


def test_pre_commit_config_is_copied_verbatim_and_local(project: Path) -> None:
    """Not rendered (bots and `pre-commit autoupdate` may edit it), and no hook needs a download."""
    name = ".pre-commit-config.yaml"
    template = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / name
    assert (project / name).read_bytes() == template.read_bytes()
    repos = load(project / name)["repos"]
    hooks = {hook["id"]: hook for repo in repos for hook in repo["hooks"]}
    assert [repo["repo"] for repo in repos] == ["local"] * len(repos)
    assert {"ruff-check", "ruff-format", "mypy"} <= set(hooks)
    for hook in hooks.values():
        assert hook["language"] == "system"
        assert hook["entry"].startswith(".venv/bin/")
    assert hooks["mypy"]["pass_filenames"] is False

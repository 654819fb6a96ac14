"""Bake package names from all over the alphabet, and a long one: each must pass its own ruff.

Import sorting orders the modules of one section by name. A template file whose import block mixes
the package with the project's other top-level packages (bench, drill, tests, ...) in one section
is then clean for some package names and not for others; the generated ruff config gives the
package a section of its own so that its place never depends on its name. The names baked here sit
on both sides of every other top-level name, found in a baked tree rather than listed by hand.

The template's own ruff runs on each bake, with the bake's config (its pyproject.toml): no venv is
installed. test_template_ruff_meets_the_project_pin checks that this ruff is one that the project
itself would install.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from bakery import Baked, bake, ruff
from packaging.requirements import Requirement

# Package names up to this long must lint clean. The longest line of code that holds the name is
# `from <package>.activities.fingerprint import (` (37 characters besides the name, line length
# 100), so 63 would fit today; 50 leaves room for such lines to grow a little.
LONG_NAME_LENGTH = 50
# The project name of the long case: the slug and the package name are derived from it, so both
# are long (the slug is in the code too, as SERVICE_NAME).
LONG_PROJECT_NAME = "Zymurgy And Other Long Words That Name The Service"


@pytest.fixture(scope="module")
def default_bake(tmp_path_factory: pytest.TempPathFactory) -> Baked:
    """Bake the default answers: every option that adds Python files (docs/workshop/) is on."""
    return Baked(path=bake(tmp_path_factory.mktemp("names-default")), answers={})


def top_level_modules(project: Path) -> set[str]:
    """Return the first-party import names of ``project`` besides its package.

    These are what ruff finds under the project root (its default ``src`` is the root and
    ``src/``): folders holding Python files and top-level ``.py`` modules. ``src`` itself is a
    source root, never imported; hidden folders (.venv, .github) hold no project code.
    """
    folders = {
        path.name
        for path in project.iterdir()
        if path.is_dir() and not path.name.startswith(".") and path.name != "src"
    }
    modules = {path.stem for path in project.glob("*.py")}
    return modules | {name for name in folders if any((project / name).rglob("*.py"))}


def neighbours(name: str) -> tuple[str, str]:
    """Return a package name just before ``name`` in sort order and one just after it.

    ``bench`` gives ``benc_service`` (``_`` sorts before letters) and ``bench_service``.
    """
    return name[:-1] + "_service", name + "_service"


def package_names(modules: set[str]) -> list[str]:
    """Return the package names to bake: both sides of each of ``modules`` and both ends."""
    names = ["aaa_service", "zzz_service"]
    for module in sorted(modules):
        before, after = neighbours(module)
        # Case-insensitive, as ruff sorts; a module name ending in a digit or _ would break this.
        assert before.lower() < module.lower() < after.lower(), (module, before, after)
        names += [before, after]
    return names


def ruff_problems(project: Path) -> list[str]:
    """Return the output of ruff check and ruff format --check that fail in ``project``."""
    problems = []
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [ruff(), *command, "--no-cache", "."],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            problems.append(f"ruff {' '.join(command)}:\n{result.stdout}{result.stderr}")
    return problems


def test_top_level_modules_are_found(default_bake: Baked) -> None:
    """The search finds the folders that bench/scale.py and tests/test_cli.py import from."""
    modules = top_level_modules(default_bake.path)
    assert {"bench", "drill", "tests"} <= modules, sorted(modules)
    assert default_bake.recorded()["package_name"] not in modules


def test_lint_does_not_depend_on_the_package_name(
    default_bake: Baked, tmp_path_factory: pytest.TempPathFactory
) -> None:
    names = package_names(top_level_modules(default_bake.path))
    failures = []
    for name in names:
        project = bake(tmp_path_factory.mktemp("names"), {"package_name": name})
        failures += [f"package_name={name}: {problem}" for problem in ruff_problems(project)]
    assert not failures, f"baked {names}; failed:\n" + "\n".join(failures)


def test_lint_passes_with_a_long_name(tmp_path: Path) -> None:
    project = bake(tmp_path, {"project_name": LONG_PROJECT_NAME})
    package = Baked(path=project, answers={}).recorded()["package_name"]
    assert len(package) == LONG_NAME_LENGTH, package
    problems = ruff_problems(project)
    assert not problems, f"package_name={package}:\n" + "\n".join(problems)


def test_template_ruff_meets_the_project_pin(default_bake: Baked) -> None:
    """The ruff these tests run satisfies the generated project's own ruff requirement."""
    text = default_bake.read("pyproject.toml")
    pins = [Requirement(spec) for spec in re.findall(r'"(ruff\b[^"]*)"', text)]
    assert len(pins) == 1, pins
    output = subprocess.run(
        [ruff(), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    version = output.split()[-1]
    assert pins[0].specifier.contains(version), f"ruff {version} does not satisfy {pins[0]}"

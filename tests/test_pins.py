"""The uv.lock every bake ships: current, complete, the same versions everywhere, used by install.

tests/pins.py (`make pins`) writes the lock template; these checks are offline and take seconds.
"""

from __future__ import annotations

import functools
import re
import subprocess
import tomllib
from pathlib import Path

import pins
import pytest
from bakery import DEFAULTS, Baked, bake, clean_env, find_python, run_in_own_group
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

RUN_MAKE_PINS = "run `make pins PINS_ARGS=--keep` (or `make pins` for newest versions)"


@pytest.fixture(scope="module", params=pins.variants(), ids=pins.variant_id)
def variant(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bake per combination of the options that change the resolution."""
    return bake(tmp_path_factory.mktemp("pins"), request.param)


def project_python(project: Path) -> str:
    """Return an interpreter for the project's requires-python, or skip the test."""
    answers = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    version = answers["project"]["requires-python"].removeprefix(">=")
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} here (PATH or pyenv): uv locks only with one")
    return python


def test_shipped_lock_is_the_resolution_of_the_bake(variant: Path) -> None:
    """The shipped uv.lock is what uv would lock: `uv sync --locked` installs it as it is."""
    result = subprocess.run(
        [pins.uv(), "lock", "--check", "--offline", "--python", project_python(variant)],
        cwd=variant,
        env=pins.uv_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{RUN_MAKE_PINS}:\n{result.stderr}"


def specifier(text: str) -> str:
    """Return a version specifier in one spelling (its clauses sorted)."""
    return ",".join(sorted(str(clause) for clause in SpecifierSet(text)))


def requirements(specs: list[str]) -> set[tuple[str, str, str]]:
    """Return (name, specifier, marker) of each requirement, normalized to compare."""
    found = set()
    for spec in specs:
        requirement = Requirement(spec)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        found.add((name, specifier(str(requirement.specifier)), str(requirement.marker or "")))
    return found


def locked_requirements(entries: list[dict[str, str]]) -> set[tuple[str, str, str]]:
    """Return (name, specifier, marker) of each requirement the lock records for the project."""
    return {(e["name"], specifier(e.get("specifier", "")), e.get("marker", "")) for e in entries}


@functools.cache
def shipped_versions() -> pins.Versions:
    """Return what the lock template pins over all variants (rendered once per session)."""
    return pins.shipped_versions()


def test_each_bake_ships_the_lock_of_its_dependencies(baked: Baked) -> None:
    """Each bake's lock is for its requires-python and dependency lists, with the pinned versions.

    The lock varies with the options in pins.AXES only: an option that changed the dependencies
    otherwise would fail here (add it to AXES).
    """
    pyproject = tomllib.loads(baked.read("pyproject.toml"))
    lock = tomllib.loads(baked.read("uv.lock"))
    assert lock["requires-python"] == pyproject["project"]["requires-python"], RUN_MAKE_PINS
    (project,) = [p for p in lock["package"] if p["source"].get("editable") == "."]
    assert project["name"] == re.sub(r"-+", "-", baked.recorded()["project_slug"])
    metadata = project["metadata"]
    assert locked_requirements(metadata["requires-dist"]) == requirements(
        pyproject["project"]["dependencies"]
    ), RUN_MAKE_PINS
    groups = pyproject["dependency-groups"]
    assert metadata["requires-dev"].keys() == groups.keys(), RUN_MAKE_PINS
    for group, specs in groups.items():
        assert locked_requirements(metadata["requires-dev"][group]) == requirements(specs), group
    pinned = shipped_versions()
    for name, versions in pins.versions(baked.read("uv.lock")).items():
        assert versions == pinned[name], name


def test_every_combination_pins_the_same_version_of_each_package() -> None:
    template = pins.LOCK_TEMPLATE.read_text(encoding="utf-8")
    locks = [pins.versions(pins.render(template, answers)) for answers in pins.variants()]
    _, conflicts = pins.union(locks)
    assert conflicts == {}, RUN_MAKE_PINS
    assert all(len(versions) == 1 for versions in shipped_versions().values())
    # What every bake has: the service's own dependencies and its dev tools.
    assert {"temporalio", "pydantic", "pytest", "ruff", "uv"} <= set.intersection(
        *(set(lock) for lock in locks)
    )


def make_dry_run(project: Path, *variables: str, ci: bool) -> str:
    """Return what `make -n install` would run in ``project`` (with or without CI set)."""
    env = clean_env()
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    result = subprocess.run(
        ["make", "-n", "install", *variables],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_generated_install_syncs_the_shipped_lock(tmp_path: Path) -> None:
    """`make install` bootstraps the uv that uv.lock pins; in CI it installs uv.lock or stops."""
    project = bake(tmp_path, {})
    (locked_uv,) = pins.versions((project / "uv.lock").read_text(encoding="utf-8"))["uv"]
    for ci in (True, False):
        commands = make_dry_run(project, ci=ci)
        assert f'pip install --quiet "uv=={locked_uv}"' in commands
        sync = [line for line in commands.splitlines() if " sync" in line]
        assert sync == [".venv/bin/uv sync --locked" if ci else ".venv/bin/uv sync"], commands
    # Without a lock (the user deleted it) the bootstrap takes the newest uv, and uv locks.
    (project / "uv.lock").unlink()
    assert 'pip install --quiet "uv"' in make_dry_run(project, ci=False)


@pytest.mark.slow
def test_generated_install_installs_exactly_the_pins(tmp_path: Path) -> None:
    """A fresh bake's `make install` (CI=true, as CI runs it) leaves uv.lock as shipped, venv equal.

    About 15 s with a warm uv cache.
    """
    version = DEFAULTS["python_version"]
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} here")
    project = bake(tmp_path, {})
    shipped = (project / "uv.lock").read_bytes()
    returncode, output = run_in_own_group(
        ["make", "install", f"PYTHON={python}", "CI=true"], project, 900
    )
    assert returncode == 0, output[-4000:]
    assert (project / "uv.lock").read_bytes() == shipped
    check = subprocess.run(
        [str(project / ".venv/bin/uv"), "sync", "--locked", "--check", "--offline"],
        cwd=project,
        env=pins.uv_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


# --- the merge that makes one template of several locks -----------------------------------------

A, B, C = ("a",), ("b",), ("c",)


@pytest.mark.parametrize(
    "files",
    [
        {A: ["x", "", "y"], B: ["x", "", "y"]},
        {A: ["x", "", "only a", "", "y"], B: ["x", "", "y"], C: ["", "x", "y", "only c"]},
        {A: ["first a", "z"], B: ["first b", "z", "last b"], C: ["z"]},
        {A: ["{{ not jinja }}", "{% raw %}", "{#"], B: ["{#", "plain"]},
        {A: [], B: ["one"]},
    ],
    ids=["same", "blank-lines", "edges", "jinja-like-text", "empty"],
)
def test_merged_template_renders_each_file_exactly(files: dict[tuple[str], list[str]]) -> None:
    merged = pins.merge(list(files.items()))
    everything = frozenset(files)
    # Render with a fake axis: the template's conditions name cookiecutter.<axis>.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pins, "AXES", ("python_version",))
        template = pins.to_template(merged, everything, header="")
        for key, lines in files.items():
            rendered = pins.render(template, {"python_version": key[0]})
            assert rendered == "".join(line + "\n" for line in lines), key


def test_conditions_name_only_the_options_that_differ() -> None:
    everything = frozenset({("3.11", "yes"), ("3.11", "no"), ("3.12", "yes"), ("3.12", "no")})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pins, "AXES", ("python_version", "deploy"))
        assert pins.condition(frozenset({("3.11", "yes"), ("3.11", "no")}), everything) == (
            'cookiecutter.python_version == "3.11"'
        )
        names = "(cookiecutter.python_version, cookiecutter.deploy)"
        assert pins.condition(frozenset({("3.11", "yes"), ("3.12", "no")}), everything) == (
            f'{names} in [("3.11", "yes"), ("3.12", "no")]'
        )


def test_changes_are_reported_per_package() -> None:
    old = {"a": frozenset({"1"}), "b": frozenset({"2"}), "c": frozenset({"3"})}
    new = {"a": frozenset({"1"}), "b": frozenset({"2.1"}), "d": frozenset({"4"})}
    assert pins.changes(old, new) == ["    b 2 -> 2.1", "  - c 3", "  + d 4"]

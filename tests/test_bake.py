"""Bake every combination of options (pairwise once there are too many) and check the result."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from bakery import COOKIECUTTER_JSON, DEFAULTS, TEMPLATE_DIR, Baked, load_hook, ruff
from cookiecutter.main import cookiecutter

# Files and folders (trailing /) that every generated project has, whatever the options.
ALWAYS_PRESENT = (
    "pyproject.toml",
    "Makefile",
    "README.md",
    ".cookiecutter.json",
    ".pre-commit-config.yaml",
    "src/{package_name}/__init__.py",
    "src/{package_name}/__main__.py",
    "src/{package_name}/app.py",
    "src/{package_name}/runtime/__init__.py",
    "src/{package_name}/runtime/settings.py",
    "src/{package_name}/runtime/worker.py",
    "src/{package_name}/runtime/graceful.py",
    "src/{package_name}/runtime/health.py",
    "src/{package_name}/runtime/metrics.py",
    "src/{package_name}/runtime/watchdog.py",
    "src/{package_name}/runtime/logs.py",
    "src/{package_name}/runtime/store.py",
    "src/{package_name}/runtime/checkpoint.py",
    "src/{package_name}/runtime/memo.py",
    "src/{package_name}/runtime/pool.py",
    "src/{package_name}/runtime/tracing.py",
    "tests/toolkit/",
    "tests/runtime/",
    "docs/make-it-yours.md",
    "docs/changing-workflows.md",
    "tests/test_replay_gate.py",
    "tests/",
    "tests/test_patterns.py",
    "docs/patterns.md",
    "sample_data/",
)

# Template syntax that must not survive rendering. `${{ }}` is GitHub Actions' own syntax.
LEFTOVER = re.compile(r"(?<!\$)\{\{|\{%|\{#")
# Jinja-looking fragments inside the answers themselves, which the project rightly contains.
ANSWER_FRAGMENT = re.compile(r"\{[{%#].*?[}%#]\}")


def project_files(root: Path) -> list[Path]:
    """Return every file under ``root``, sorted."""
    return sorted(path for path in root.rglob("*") if path.is_file())


def text_of(path: Path) -> str | None:
    """Return the file's text, or None for a binary file."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_always_present_files(baked: Baked) -> None:
    name = baked.recorded()["package_name"]
    for entry in ALWAYS_PRESENT:
        path = baked.path / entry.format(package_name=name)
        if entry.endswith("/"):
            assert path.is_dir(), f"missing folder {entry}"
        else:
            assert path.is_file(), f"missing file {entry}"


def test_option_files_present_or_absent(baked: Baked) -> None:
    """Files the post-gen table deletes for these answers are gone; other options' files are not."""
    hook = load_hook("post_gen_project")
    answers = baked.recorded()
    absent = set(hook.paths_to_delete(answers, hook.DELETE_WHEN))
    for option, by_value in hook.MOVE_WHEN.items():  # moved into place: gone from where it was
        for source, target in by_value.get(answers[option], ()):
            absent.add(source.format(package_name=answers["package_name"]))
            assert (baked.path / target.format(package_name=answers["package_name"])).is_file()
    for option, by_value in hook.DELETE_WHEN.items():
        for value, paths in by_value.items():
            if value == answers[option]:
                continue
            for relative in paths:
                relative = relative.format(package_name=answers["package_name"])
                if relative not in absent:
                    assert (baked.path / relative).exists(), f"{relative} should be kept"
    for relative in absent:
        assert not (baked.path / relative).exists(), f"{relative} should be deleted"


def test_no_template_syntax_left(baked: Baked) -> None:
    verbatim = COOKIECUTTER_JSON.get("_copy_without_render", [])
    fragments = {
        fragment for value in baked.answers.values() for fragment in ANSWER_FRAGMENT.findall(value)
    }
    problems = []
    for path in project_files(baked.path):
        relative = path.relative_to(baked.path).as_posix()
        if LEFTOVER.search(relative):
            problems.append(f"{relative}: template syntax in the file name")
        if any(fnmatch.fnmatch(relative, pattern) for pattern in verbatim):
            continue
        text = text_of(path)
        if text is None:
            continue
        for fragment in fragments:
            text = text.replace(fragment, "")
        for number, line in enumerate(text.splitlines(), start=1):
            if LEFTOVER.search(line):
                problems.append(f"{relative}:{number}: {line.strip()}")
    assert not problems, "unrendered template syntax:\n" + "\n".join(problems)


def test_data_files_parse(baked: Baked) -> None:
    parsed = 0
    for path in project_files(baked.path):
        relative = path.relative_to(baked.path)
        try:
            if path.suffix == ".toml":
                tomllib.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix in {".yaml", ".yml"}:
                list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
            else:
                continue
        except (ValueError, yaml.YAMLError) as error:
            pytest.fail(f"{relative} does not parse: {error}")
        parsed += 1
    assert parsed >= 2  # at least pyproject.toml and .cookiecutter.json


def test_requires_python_matches_choice(baked: Baked) -> None:
    pyproject = tomllib.loads(baked.read("pyproject.toml"))
    requires = pyproject["project"]["requires-python"]
    version = baked.answers.get("python_version", DEFAULTS["python_version"])
    assert re.fullmatch(rf">=\s*{re.escape(version)}(\.0)?", requires), requires


def test_mypy_config_matches_project(baked: Baked) -> None:
    """The type check covers the chosen Python, folders that exist, stubs for untyped dev tools."""
    pyproject = tomllib.loads(baked.read("pyproject.toml"))
    mypy = pyproject["tool"]["mypy"]
    assert mypy["python_version"] == baked.answers.get("python_version", DEFAULTS["python_version"])
    for folder in mypy["files"]:
        assert (baked.path / folder).is_dir(), f"[tool.mypy] files lists missing {folder}"
    dev = {
        re.split(r"[^\w.-]", spec, maxsplit=1)[0].lower()
        for spec in pyproject["dependency-groups"]["dev"]
    }
    assert "mypy" in dev
    assert ("pyyaml" in dev) == ("types-pyyaml" in dev), sorted(dev)


def test_answers_recorded(baked: Baked) -> None:
    recorded = baked.recorded()
    for key in COOKIECUTTER_JSON:
        if not key.startswith("_"):
            assert key in recorded, f".cookiecutter.json lacks {key}"
    for key, value in baked.answers.items():
        assert recorded[key] == value, key
    assert recorded["project_slug"] == baked.path.name
    assert (baked.path / "src" / recorded["package_name"]).is_dir()


def test_replay_from_recorded_answers(baked: Baked, tmp_path: Path) -> None:
    """`cookiecutter --replay-file .cookiecutter.json` bakes the same project again."""
    again = Path(
        cookiecutter(
            str(TEMPLATE_DIR),
            replay=str(baked.path / ".cookiecutter.json"),
            output_dir=str(tmp_path),
        )
    )
    first = {p.relative_to(baked.path): p.read_bytes() for p in project_files(baked.path)}
    second = {p.relative_to(again): p.read_bytes() for p in project_files(again)}
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []


def test_ruff_check(baked: Baked) -> None:
    result = subprocess.run(
        [ruff(), "check", "--no-cache", "."],
        cwd=baked.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format(baked: Baked) -> None:
    result = subprocess.run(
        [ruff(), "format", "--check", "--no-cache", "."],
        cwd=baked.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

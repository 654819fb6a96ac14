"""Finish the generated project: drop the files of options not chosen, then say what to run next.

Cookiecutter renders this file with Jinja and runs it inside the new project folder. The answers
come in as one JSON document inside a raw string, as in pre_gen_project.py. Standard library only,
no network.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# Jinja fills in the answers (see pre_gen_project.py for why this form is safe).
ANSWERS_JSON = r'''{{ cookiecutter | tojson }}'''  # fmt: skip

# option -> chosen value -> paths to delete, relative to the project root. A path may name the
# package as {package_name}, e.g. "src/{package_name}/store_redis.py". A path that is missing after
# rendering is a template bug and fails the bake. Example for a later option:
#     "state_store": {"sqlite": ["src/{package_name}/stores/redis.py"], "redis": []},
DELETE_WHEN: dict[str, dict[str, list[str]]] = {
    "sample": {
        "pipeline": [
            "src/{package_name}/minimal",
            "src/{package_name}/app_minimal.py",
            "tests/minimal",
        ],
        "minimal": [
            "src/{package_name}/pipeline",
            "tests/pipeline",
            "bench",
            "docs/pipeline.md",
            "docs/patterns-pipeline.md",
            "tests/patterns/fetch_activity.py",
            "tests/patterns/cpu_activity.py",
        ],
    },
    "deploy": {
        "no": [
            "Dockerfile",
            ".dockerignore",
            "compose.yaml",
            "deploy",
            "tests/test_deploy.py",
            "tests/test_deploy_validators.py",
            "tests/schemas",
        ],
    },
    "ci": {"none": [".github", "tests/test_github.py"]},
    "workshop": {"no": ["docs/workshop", "tests/test_workshop.py"]},
}


def rendered_answers(text: str = ANSWERS_JSON) -> dict[str, object]:
    """Return the answers that Jinja rendered into this file, as a dict."""
    answers = json.loads(text)
    if not isinstance(answers, dict):
        raise TypeError("the rendered answers are not a JSON object")
    return answers


def paths_to_delete(
    answers: Mapping[str, object], table: Mapping[str, Mapping[str, Sequence[str]]]
) -> list[str]:
    """Return the relative paths that ``table`` deletes for ``answers``, sorted, without repeats."""
    paths: set[str] = set()
    for option, by_value in table.items():
        if option not in answers:
            raise KeyError(f"post_gen_project: option {option!r} is not in cookiecutter.json")
        chosen = str(answers[option])
        for path in by_value.get(chosen, ()):
            paths.add(path.format(package_name=answers.get("package_name", "")))
    return sorted(paths)


def remove_unchosen(
    root: Path,
    answers: Mapping[str, object],
    table: Mapping[str, Mapping[str, Sequence[str]]] = DELETE_WHEN,
) -> list[Path]:
    """Delete the files and folders that ``table`` names for ``answers`` under ``root``.

    Returns the deleted paths. Raises FileNotFoundError for a listed path that does not exist and
    ValueError for one that points outside ``root``.
    """
    root = root.resolve()
    removed: list[Path] = []
    for relative in paths_to_delete(answers, table):
        path = root / relative
        if not path.resolve().is_relative_to(root) or path.resolve() == root:
            raise ValueError(f"post_gen_project: {relative!r} is outside the project")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            raise FileNotFoundError(f"post_gen_project: {relative!r} is not in the project")
        removed.append(path)
    return removed


# option -> chosen value -> (from, to): files moved into place after the deletions, e.g. the
# minimal sample's composition root becoming app.py.
MOVE_WHEN: dict[str, dict[str, list[tuple[str, str]]]] = {
    "sample": {"minimal": [("src/{package_name}/app_minimal.py", "src/{package_name}/app.py")]},
}


def move_chosen(
    root: Path,
    answers: Mapping[str, object],
    table: Mapping[str, Mapping[str, Sequence[tuple[str, str]]]] = MOVE_WHEN,
) -> list[Path]:
    """Move the files that ``table`` names for ``answers``, replacing the targets.

    Returns the targets. Raises FileNotFoundError for a listed source that does not exist.
    """
    package = str(answers.get("package_name", ""))
    moved: list[Path] = []
    for option, by_value in table.items():
        for source, target in by_value.get(str(answers.get(option, "")), ()):
            src = root / source.format(package_name=package)
            dst = root / target.format(package_name=package)
            if not src.is_file():
                raise FileNotFoundError(f"post_gen_project: {source!r} is not in the project")
            src.replace(dst)
            moved.append(dst)
    return moved


def display_path(project_dir: Path) -> str:
    """Return how to ``cd`` into ``project_dir`` from the shell that ran cookiecutter."""
    shell_dir = os.environ.get("PWD")
    if shell_dir:
        relative = os.path.relpath(project_dir, shell_dir)
        if not relative.startswith(".."):
            return relative
    return str(project_dir)


def next_steps(project_dir: Path, answers: Mapping[str, object]) -> str:
    """Return the message that tells the user which two commands to run next."""
    python_version = str(answers.get("python_version", ""))
    lines = [
        f"Created {project_dir.name}. Next:",
        f"  cd {display_path(project_dir)}",
        f"  make run    # the {answers.get('sample', '')} sample on an embedded Temporal server",
        "  make test   # ruff, mypy and the project's tests",
        "Then docs/make-it-yours.md: replace the sample with your own workflows.",
    ]
    if python_version and python_version != "3.11":
        lines.append(
            f"The project needs Python >= {python_version}: if python3 is older, add"
            f" PYTHON=python{python_version} (or a path to it) to each make command."
        )
    return "\n".join(lines)


def main() -> int:
    """Remove the files of options not chosen and print the next commands; return the exit code."""
    answers = rendered_answers()
    project_dir = Path.cwd()
    remove_unchosen(project_dir, answers)
    move_chosen(project_dir, answers)
    print(next_steps(project_dir, answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())

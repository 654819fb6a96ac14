"""The generated docs/make-it-yours.md, followed word for word on fresh bakes.

The guide's steps are its fenced blocks, in order: each ```sh block is run in the project, and
each ```python block that follows a line naming a file (**`path`**) becomes that file. After
the last step, the project's own `make test` (lint, strict types, every test, the new
workflow's resilience tests among them) must pass. The guide also says how many files it
makes you touch; that number, its table and its blocks must agree.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from bakery import bake, run_in_own_group
from test_generated_make_test import TIMEOUT_S, report

GUIDE = "docs/make-it-yours.md"
NUMBERS = {"three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
FENCE = re.compile(r"^```(sh|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
FILE_LINE = re.compile(r"^\*\*`([^`]+)`\*\*$", re.MULTILINE)


@dataclass(frozen=True)
class Step:
    """One block of the guide: a shell command to run, or a file to write."""

    kind: str  # "sh" or "file"
    text: str
    path: str | None = None


def steps_of(guide: str) -> list[Step]:
    """Return the guide's steps in order; a python block is a file after a **`path`** line."""
    steps = []
    for block in FENCE.finditer(guide):
        kind, text = block.group(1), block.group(2)
        if kind == "sh":
            steps.append(Step("sh", text))
            continue
        before = guide[: block.start()].rstrip().splitlines()
        named = FILE_LINE.fullmatch(before[-1]) if before else None
        if named:
            steps.append(Step("file", text, named.group(1)))
    return steps


def touched_count(guide: str) -> int:
    """Return the number of files the guide says you touch ("You touch five files")."""
    match = re.search(r"\*\*You touch (\w+) files\*\*", guide)
    assert match, "the guide does not say how many files you touch"
    return NUMBERS[match.group(1)]


def table_files(guide: str) -> list[str]:
    """Return the files of the guide's table (`| `path` | what |` rows)."""
    return re.findall(r"^\| `([^`]+)` \|", guide, flags=re.MULTILINE)


def follow(project: Path) -> list[str]:
    """Do what the guide says in ``project``; return the files it wrote, in order."""
    written = []
    for step in steps_of((project / GUIDE).read_text(encoding="utf-8")):
        if step.kind == "sh":
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", step.text],
                cwd=project,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, f"{step.text}\n{done.stdout}{done.stderr}"
        else:
            assert step.path is not None
            target = project / step.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.text, encoding="utf-8")
            written.append(step.path)
    return written


@pytest.mark.parametrize(
    "answers",
    [{"sample": "minimal", "workshop": "no"}, {"sample": "pipeline", "workshop": "yes"}],
    ids=["minimal", "pipeline"],
)
def test_the_guide_counts_the_files_it_touches(answers: dict[str, str], tmp_path: Path) -> None:
    project = bake(tmp_path, answers)
    guide = (project / GUIDE).read_text(encoding="utf-8")
    written = [step.path for step in steps_of(guide) if step.kind == "file"]
    assert len(written) == len(set(written)), "a file written twice"
    assert table_files(guide) == written
    assert touched_count(guide) == len(written)
    assert "TESTS-PLACEHOLDER" not in guide


@pytest.mark.slow
@pytest.mark.parametrize(
    "answers",
    # From minimal, with the deploy files and CI (their tests run the new service too); from
    # the pipeline with the workshop, the bake with the most to remove.
    [{"sample": "minimal", "workshop": "no"}, {"sample": "pipeline", "workshop": "yes"}],
    ids=["minimal", "pipeline"],
)
def test_following_the_guide_gives_a_project_that_passes_make_test(
    answers: dict[str, str], tmp_path: Path
) -> None:
    project = bake(tmp_path, answers)
    written = follow(project)
    assert written, "the guide wrote no file"
    sample = answers["sample"]
    assert not (project / "src" / project.name.replace("-", "_") / sample).exists()
    returncode, output = run_in_own_group(["make", "test"], project, TIMEOUT_S)
    log = tmp_path / "make-test.log"
    log.write_text(output, encoding="utf-8")
    shown = f"`make test` in {project} after the guide (its whole output: {log})"
    assert returncode is not None, f"{shown} took over {TIMEOUT_S} s:\n{report(output)}"
    assert returncode == 0, f"{shown} failed:\n{report(output)}"
    # The new workflow's own tests are part of that suite (make test passed, so they passed).
    listed = subprocess.run(
        [".venv/bin/pytest", "--collect-only", "-q", "-p", "no:xdist", "tests/test_invoices.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert re.search(r"^\d+ tests? collected", listed.stdout, re.MULTILINE), listed.stdout

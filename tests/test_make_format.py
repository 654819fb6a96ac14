"""The generated `make format` formats even when ruff leaves an error that it cannot fix."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from bakery import bake, ruff, run_in_own_group

# An unused import (ruff fixes it), an undefined name (F821: nobody but a person can fix that) and
# spacing that ruff format rewrites.
UNTIDY = """import os


def total(values):
    return sum( values )+missing
"""
TIDY = """def total(values):
    return sum(values) + missing
"""


def fake_venv(project: Path) -> None:
    """Give ``project`` a .venv/ with only the template's ruff, which make takes as installed."""
    bin_dir = project / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "ruff").symlink_to(ruff())
    (project / ".venv" / ".installed").touch()
    # pyproject.toml, the stamp's prerequisite, goes back a minute: `install` has nothing to do.
    earlier = (project / "pyproject.toml").stat().st_mtime - 60
    os.utime(project / "pyproject.toml", (earlier, earlier))


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_format_formats_despite_an_unfixable_error(tmp_path: Path) -> None:
    project = bake(tmp_path)
    fake_venv(project)
    untidy = project / "bench" / "untidy.py"
    untidy.write_text(UNTIDY, encoding="utf-8")
    returncode, output = run_in_own_group(["make", "format"], project, timeout=120)
    assert returncode is not None, output
    assert untidy.read_text(encoding="utf-8") == TIDY, output
    # What is left is listed, and make fails on it.
    assert "F821" in output, output
    assert returncode != 0, output

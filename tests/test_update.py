"""A project baked from one template commit takes a later commit's change with `cruft update`.

The path the generated README documents: a project made with plain cookiecutter is linked with
`cruft link`, passing the answers it recorded in .cookiecutter.json; `cruft update` then merges
what the template changed since into the project, keeping the project's own edits. Everything is
local: the template is a git repository in a temporary folder, so no network is needed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from bakery import TEMPLATE_DIR, recorded_answers
from cookiecutter.main import cookiecutter

# What a checkout of the template holds besides the template: tools, caches, bakes.
NOT_TEMPLATE = (".git", ".venv", ".demo", ".pytest_cache", ".ruff_cache", "__pycache__")
# Non-default answers, so that the test sees them survive the update.
ANSWERS = {"python_version": "3.12", "deploy": "no", "ci": "none"}
TEMPLATE_CHANGE = "Template commit B: a later version of the template changed this line."
LOCAL_CHANGE = "A note the project's team added after baking."


def cruft() -> str:
    """Return the cruft command installed next to this Python (the template's venv)."""
    return str(Path(sys.executable).parent / "cruft")


def run(*command: str, cwd: Path) -> str:
    """Run ``command`` in ``cwd``; fail the test with its output if it fails; return stdout."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def commit_all(repo: Path, message: str) -> str:
    """Commit everything in ``repo`` (``git init`` first if needed); return the commit's SHA."""
    if not (repo / ".git").exists():
        run("git", "init", "-q", "-b", "main", cwd=repo)
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-q", "--no-verify", "-m", message, cwd=repo)
    return run("git", "rev-parse", "HEAD", cwd=repo).strip()


def readme_link_command(readme: str) -> str:
    """Return the `cruft link` command of the README's "Updating from the template" section."""
    match = re.search(r"^uvx cruft link (?:.*\\\n)*.*$", readme, re.MULTILINE)
    assert match, "the README shows no `uvx cruft link` command"
    return match.group(0)


def append(path: Path, line: str) -> None:
    """Add ``line`` at the end of the text file ``path``."""
    path.write_text(path.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")


def insert_after_first_line(path: Path, line: str) -> None:
    """Insert ``line`` (and a blank line) after the first line of the text file ``path``."""
    first, rest = path.read_text(encoding="utf-8").split("\n", 1)
    path.write_text(f"{first}\n\n{line}\n{rest}", encoding="utf-8")


def test_cruft_update_brings_template_change_and_keeps_local_edits(tmp_path: Path) -> None:
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE_DIR, template, ignore=shutil.ignore_patterns(*NOT_TEMPLATE))
    commit_a = commit_all(template, "template commit A")

    # Baked with plain cookiecutter from commit A's files, as most projects start.
    project = Path(
        cookiecutter(
            str(template), no_input=True, extra_context=ANSWERS, output_dir=str(tmp_path / "out")
        )
    )
    commit_all(project, "baked")

    # The README's own `cruft link` command, run as written (with this venv's cruft for uvx's).
    link = readme_link_command((project / "README.md").read_text(encoding="utf-8"))
    link = link.replace("uvx cruft", shlex.quote(cruft()), 1)
    link = link.replace("<template>", shlex.quote(str(template)))
    link = link.replace("<commit-or-tag>", commit_a)
    run("bash", "-c", link, cwd=project)
    assert json.loads((project / ".cruft.json").read_text(encoding="utf-8"))["commit"] == commit_a
    commit_all(project, "link to the template")

    readme = project / "README.md"
    insert_after_first_line(readme, LOCAL_CHANGE)
    commit_all(project, "a local edit")

    slug = template / "{{cookiecutter.project_slug}}"
    append(slug / "README.md", TEMPLATE_CHANGE)
    append(slug / "Makefile", f"# {TEMPLATE_CHANGE}")
    commit_b = commit_all(template, "template commit B")

    run(cruft(), "update", "--skip-apply-ask", cwd=project)

    text = readme.read_text(encoding="utf-8")
    assert TEMPLATE_CHANGE in text
    assert LOCAL_CHANGE in text
    assert TEMPLATE_CHANGE in (project / "Makefile").read_text(encoding="utf-8")
    assert list(project.rglob("*.rej")) == []
    state = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    assert state["commit"] == commit_b
    # The answers stayed those of the bake, not the template's defaults.
    linked = state["context"]["cookiecutter"]
    assert {key: linked[key] for key in ANSWERS} == ANSWERS
    assert recorded_answers(project)["python_version"] == "3.12"
    assert 'requires-python = ">=3.12"' in (project / "pyproject.toml").read_text(encoding="utf-8")
    assert not (project / ".github").exists()
    assert not (project / "Dockerfile").exists()

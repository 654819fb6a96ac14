"""Helpers for the template's tests: read cookiecutter.json, list option combinations, bake."""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
COOKIECUTTER_JSON: dict[str, Any] = json.loads(
    (TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8")
)

# Options with a list of choices; the first choice is the default.
CHOICES: dict[str, list[str]] = {
    key: [str(choice) for choice in value]
    for key, value in COOKIECUTTER_JSON.items()
    if isinstance(value, list) and not key.startswith("_")
}
# The default of each choice option (its first choice).
DEFAULTS: dict[str, str] = {key: values[0] for key, values in CHOICES.items()}
# One combination off the defaults: every option on its second choice.
NON_DEFAULT: dict[str, str] = {
    key: values[min(1, len(values) - 1)] for key, values in CHOICES.items()
}
# Above this many combinations, bake a pairwise-covering subset instead of all of them.
MAX_FULL_COMBINATIONS = 30

# Literal answer values with quotes, backslashes, non-ASCII, an astral character and text that
# looks like Jinja. Each must reach the generated project exactly as written.
ODD_VALUES: dict[str, str] = {
    "project_name": 'Ünïcode "Quoted" \\ Service {{ x }} 😀',
    "description": 'Says "hi" to O\'Brien, reads C:\\temp\\ and {{ cookiecutter.project_slug }}'
    " {% if x %}{# not a comment #}'''",
    "author_name": "Zoë O'Brien-Łukasiewicz \\ {{ 7 * 7 }}",
}


@dataclass(frozen=True)
class Baked:
    """A baked project: its folder and the literal answer values it was baked with."""

    path: Path
    answers: dict[str, str]

    def read(self, relative: str) -> str:
        """Return the text of a file in the project."""
        return (self.path / relative).read_text(encoding="utf-8")

    def recorded(self) -> dict[str, Any]:
        """Return the answers recorded in .cookiecutter.json (cookiecutter's replay format)."""
        return recorded_answers(self.path)


def recorded_answers(project: Path) -> dict[str, Any]:
    """Return the answers that ``project`` records in its .cookiecutter.json."""
    data = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    answers = data.get("cookiecutter", data)
    assert isinstance(answers, dict)
    return answers


def literal_answer(value: str) -> str:
    """Return ``value`` wrapped so that cookiecutter's --no-input rendering leaves it as is.

    With --no-input (or extra_context) cookiecutter renders every answer as a Jinja template, so
    ``{{ x }}`` in an answer would be evaluated (and fail: x is undefined). A raw block is how a
    user passes such text literally. Interactive answers are not rendered.
    """
    if "{% endraw %}" in value:
        raise ValueError("a literal answer cannot contain an endraw tag")
    return "{% raw %}" + value + "{% endraw %}"


ODD_ANSWERS: dict[str, str] = {key: literal_answer(value) for key, value in ODD_VALUES.items()}


def unsupported_reason(answers: Mapping[str, str]) -> str | None:
    """Why the pre-generation hook refuses this combination of options, or None if it bakes."""
    reason = _pre_gen_hook().check_combination(dict(answers))
    assert reason is None or isinstance(reason, str)
    return reason


def all_combinations(choices: Mapping[str, list[str]]) -> list[dict[str, str]]:
    """Return every supported combination of the choice options, as answer dicts."""
    keys = list(choices)
    every = [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*choices.values())
    ]
    return [combo for combo in every if unsupported_reason(combo) is None]


Pair = tuple[tuple[str, str], tuple[str, str]]


def _pair(a: tuple[str, str], b: tuple[str, str]) -> Pair:
    """Return the (option, value) pair ``a``, ``b`` in a fixed order."""
    return (a, b) if a <= b else (b, a)


def pairwise_combinations(choices: Mapping[str, list[str]]) -> list[dict[str, str]]:
    """Return combinations that together hold every pair of values of every two options.

    Greedy and deterministic: start from the first value pair still missing and fill in the other
    options with the value that covers most missing pairs.
    """
    keys = list(choices)
    if len(keys) < 2:
        return all_combinations(choices)
    missing = {
        _pair((a, va), (b, vb))
        for a, b in itertools.combinations(keys, 2)
        for va in choices[a]
        for vb in choices[b]
        if unsupported_reason({a: va, b: vb}) is None  # a refused pair is never baked
    }
    result: list[dict[str, str]] = []
    while missing:
        (a, va), (b, vb) = min(missing)
        combo = {a: va, b: vb}
        for key in keys:
            if key in combo:
                continue
            allowed = [v for v in choices[key] if unsupported_reason({**combo, key: v}) is None]
            gains = {
                value: sum(_pair((key, value), item) in missing for item in combo.items())
                for value in allowed
            }
            combo[key] = max(allowed, key=gains.__getitem__)
        ordered = {key: combo[key] for key in keys}
        missing -= {
            _pair((x, ordered[x]), (y, ordered[y])) for x, y in itertools.combinations(keys, 2)
        }
        result.append(ordered)
    return result


def combinations(choices: Mapping[str, list[str]] = CHOICES) -> list[dict[str, str]]:
    """Return all combinations of the options, or a pairwise subset when there are too many."""
    count = 1
    for values in choices.values():
        count *= len(values)
    if count <= MAX_FULL_COMBINATIONS:
        return all_combinations(choices)
    return pairwise_combinations(choices)


def combination_id(answers: Mapping[str, str]) -> str:
    """Return a short test id for a combination, e.g. ``python_version=3.12``."""
    return ",".join(f"{key}={value}" for key, value in answers.items()) or "defaults"


def bake(output_dir: Path, answers: Mapping[str, str] | None = None) -> Path:
    """Bake with ``answers`` (the rest default) into ``output_dir``; return the project folder."""
    project = cookiecutter(
        str(TEMPLATE_DIR),
        no_input=True,
        extra_context=dict(answers or {}),
        output_dir=str(output_dir),
    )
    return Path(project)


def bake_cli(
    output_dir: Path, answers: Mapping[str, str], *options: str
) -> subprocess.CompletedProcess[str]:
    """Bake with the cookiecutter command line (--no-input), so hook failures show as for users."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            *options,
            "--output-dir",
            str(output_dir),
            str(TEMPLATE_DIR),
            *(f"{key}={value}" for key, value in answers.items()),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


@functools.cache
def _pre_gen_hook() -> ModuleType:
    return load_hook("pre_gen_project")


def load_hook(name: str) -> ModuleType:
    """Import hooks/<name>.py (unrendered: the answers are only read when its main() runs)."""
    path = TEMPLATE_DIR / "hooks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"hook_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ruff() -> str:
    """Return the path of the ruff installed next to this Python (the template's venv)."""
    candidate = Path(sysconfig.get_path("scripts")) / "ruff"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("ruff")
    if found is None:
        raise FileNotFoundError("ruff is not installed; run `make install`")
    return found


def python_minor(executable: str) -> str | None:
    """Return ``3.X`` for an interpreter that runs and can make venvs, else None."""
    try:
        result = subprocess.run(
            [
                executable,
                "-c",
                "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={k: v for k, v in os.environ.items() if k != "PYENV_VERSION"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _pyenv_roots() -> Iterable[Path]:
    """Yield the folders where pyenv may keep its Pythons."""
    pyenv = shutil.which("pyenv")
    if pyenv:
        result = subprocess.run(
            [pyenv, "root"], capture_output=True, text=True, timeout=30, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            yield Path(result.stdout.strip())
    if os.environ.get("PYENV_ROOT"):
        yield Path(os.environ["PYENV_ROOT"])
    yield Path.home() / ".pyenv"


def _version_key(path: str) -> tuple[int, ...]:
    """Sort key for .../versions/3.12.10/bin/python3.12: the numbers of the version folder."""
    folder = Path(path).parents[1].name
    return tuple(int(part) for part in re.findall(r"\d+", folder))


@functools.cache
def find_python(version: str) -> str | None:
    """Return an interpreter for Python ``version`` (``3.X``) that runs, or None.

    Tries ``python3`` itself, then ``python3.X`` on PATH (a pyenv shim only counts if it runs),
    then pyenv's versions folder.
    """
    candidates: list[str] = []
    for name in ("python3", f"python{version}"):
        found = shutil.which(name)
        if found:
            candidates.append(found)
    for root in _pyenv_roots():
        installed = (root / "versions").glob(f"{version}*/bin/python{version}")
        candidates.extend(sorted(map(str, installed), key=_version_key, reverse=True))
    for candidate in candidates:
        if python_minor(candidate) == version:
            return candidate
    return None


def clean_env() -> dict[str, str]:
    """Return os.environ without what would leak from an outer make or venv into a baked one."""
    drop = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "VIRTUAL_ENV", "PYTHONPATH"}
    return {key: value for key, value in os.environ.items() if key not in drop}


def run_in_own_group(command: list[str], cwd: Path, timeout: float) -> tuple[int | None, str]:
    """Run ``command`` in a new process group; return its exit code (None on timeout) and output.

    On timeout the whole group is killed, so servers the command started do not outlive the test.
    """
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            return None, output
        return process.returncode, output

"""Slow: bake a project and run its own `make test`, as a user would right after baking.

`make test` (and so CI) runs it for three bakes that between them give every option each of
its values, including the pairs that once broke (a Redis default store with the workshop).
`make test-every-bake` runs it for every supported combination of options, two at a time
(about an hour and a half on 2 cores): run it before a release, or after a change that an
option could interact with.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bakery import (
    CHOICES,
    DEFAULTS,
    NON_DEFAULT,
    ODD_ANSWERS,
    all_combinations,
    bake,
    combination_id,
    find_python,
    python_minor,
    run_in_own_group,
)

# The generated project's `make test` installs its venv (uv, warm cache: seconds), runs ruff and its
# tests (promised under 60 s). The limit is generous for a cold cache on 2 busy cores.
TIMEOUT_S = 900

CASES = [
    pytest.param({}, id="defaults"),
    # Non-default options plus quotes, backslashes, unicode and Jinja-looking text in free-text
    # answers (passed inside raw blocks, see bakery.literal_answer).
    pytest.param({**NON_DEFAULT, **ODD_ANSWERS}, id="odd-names," + ",".join(NON_DEFAULT.values())),
    # The newest Python, the Redis default store with the workshop and the deploy files.
    pytest.param(
        {"python_version": CHOICES["python_version"][-1], "state_store": "redis", "ci": "none"},
        id="python-newest,redis,workshop,deploy",
    ),
]
EVERY_BAKE = [
    pytest.param(combo, id=combination_id(combo), marks=pytest.mark.every_bake)
    for combo in all_combinations(CHOICES)
]


@pytest.mark.slow
@pytest.mark.parametrize("answers", CASES + EVERY_BAKE)
def test_generated_project_passes_its_own_make_test(
    answers: dict[str, str], tmp_path: Path
) -> None:
    version = answers.get("python_version", DEFAULTS["python_version"])
    make = ["make", "test"]
    if python_minor("python3") != version:
        python = find_python(version)
        if python is None:
            pytest.skip(f"no working Python {version} on this machine (PATH or pyenv)")
        make.append(f"PYTHON={python}")
    project = bake(tmp_path, answers)
    returncode, output = run_in_own_group(make, project, TIMEOUT_S)
    log = tmp_path / "make-test.log"
    log.write_text(output, encoding="utf-8")
    shown = f"`{' '.join(make)}` in {project} (its whole output: {log})"
    assert returncode is not None, f"{shown} took over {TIMEOUT_S} s:\n{report(output)}"
    assert returncode == 0, f"{shown} failed:\n{report(output)}"


def report(output: str, tail: int = 8000) -> str:
    """Return the end of ``output``, plus pytest's "short test summary info" section in full.

    The section is added when the end does not hold all of it (a long traceback can push it
    out of the last ``tail`` characters).
    """
    shown = output[-tail:]
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if "short test summary info" in line]
    if not starts:
        return shown
    summary = [lines[starts[-1]]]
    for line in lines[starts[-1] + 1 :]:
        summary.append(line)
        if line.startswith("="):  # the closing "=== 1 failed, 300 passed in ... ===" line
            break
    section = "\n".join(summary)
    if section in shown:
        return shown
    return f"{shown}\n\n(pytest's summary, from earlier in the output:)\n{section}"

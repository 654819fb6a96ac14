"""Check the answers before cookiecutter writes the project.

Cookiecutter renders this file with Jinja and runs it inside the new project folder. The answers
come in as one JSON document inside a raw string (see ``rendered_answers``), so quotes, backslashes
and template-looking text in free-text answers are plain data here: they can neither break this
script nor run as code.

On the first bad answer this prints one line to stderr, ``error: <answer> <value> <problem>``, and
exits 1; cookiecutter then deletes the half-made project folder. Standard library only, no network.
"""

from __future__ import annotations

import json
import keyword
import re
import sys

# Jinja fills in the answers. The JSON text never holds a single quote (the tojson filter writes
# it as \u0027) nor a raw newline, so a raw triple-single-quoted string holds it safely. fmt: skip
# keeps ruff format from turning the quotes into double quotes, which the JSON text may contain.
ANSWERS_JSON = r'''{{ cookiecutter | tojson }}'''  # fmt: skip

# Import names that the generated project installs or uses, besides the standard library. A package
# with one of these names would hide the real one (or be hidden by it).
DEPENDENCY_MODULES: frozenset[str] = frozenset(
    {
        # runtime: temporalio, pydantic-settings, httpx and what they pull in
        "temporalio",
        "nexusrpc",
        "google",  # protobuf
        "pydantic",
        "pydantic_core",
        "pydantic_settings",
        "annotated_types",
        "typing_extensions",
        "typing_inspection",
        "dotenv",  # python-dotenv
        "httpx",
        "httpcore",
        "h11",
        "anyio",
        "sniffio",
        "idna",
        "certifi",
        # dev tools and what later options add
        "pytest",
        "_pytest",
        "pluggy",
        "iniconfig",
        "packaging",
        "ruff",
        "uv",
        "redis",
        # pre-commit and what it pulls in
        "pre_commit",
        "cfgv",
        "identify",
        "nodeenv",
        "virtualenv",
        "distlib",
        "filelock",
        "platformdirs",
        "yaml",
        # mypy and what it pulls in (make typecheck)
        "mypy",
        "mypyc",
        "mypy_extensions",
        "pathspec",
        "librt",
        # folders of the generated project
        "tests",
        "src",
        "docs",  # `python -m docs.workshop.check` imports it (workshop=yes)
        "bench",  # `python -m bench`
        "drill",  # `python -m drill`
        "yourpackage",  # the placeholder package of tests/patterns/ (docs/patterns.md)
    }
)

# Standard-library names that sys.stdlib_module_names of the running Python may lack: modules
# removed in 3.12 and 3.13 (a project may still run on an older Python) and modules added in 3.14.
EXTRA_STDLIB_MODULES: frozenset[str] = frozenset(
    {
        "asynchat",
        "asyncore",
        "distutils",
        "imp",
        "smtpd",
        "aifc",
        "audioop",
        "cgi",
        "cgitb",
        "chunk",
        "crypt",
        "imghdr",
        "lib2to3",
        "mailcap",
        "msilib",
        "nis",
        "nntplib",
        "ossaudiodev",
        "pipes",
        "sndhdr",
        "spwd",
        "sunau",
        "telnetlib",
        "uu",
        "xdrlib",
        "annotationlib",
        "compression",
    }
)

SLUG_CHARS = re.compile(r"[a-z0-9-]+")
# Deliberately simple: something@domain.tld, no spaces, no quotes or brackets, no empty labels.
EMAIL = re.compile(
    r"[^@\s\"'<>()\[\],;:\\]+"  # local part
    r"@(?:[^\W_](?:[\w-]*[^\W_])?\.)+"  # domain labels
    r"[^\W\d_]{2,}"  # top-level domain: letters only
)


def rendered_answers(text: str = ANSWERS_JSON) -> dict[str, object]:
    """Return the answers that Jinja rendered into this file, as a dict."""
    answers = json.loads(text)
    if not isinstance(answers, dict):
        raise TypeError("the rendered answers are not a JSON object")
    return answers


def stdlib_modules() -> frozenset[str]:
    """Return the names of standard-library modules, for this and the other supported Pythons."""
    return frozenset(getattr(sys, "stdlib_module_names", ())) | EXTRA_STDLIB_MODULES


def check_package_name(value: str) -> str | None:
    """Return what is wrong with ``value`` as the package's import name, or None if it is fine."""
    if not value:
        return "package_name is empty"
    if not value.isascii():
        return f"package_name {value!r} must be ASCII"
    if not value.isidentifier():
        return (
            f"package_name {value!r} is not a valid Python identifier"
            " (letters, digits and _, not starting with a digit)"
        )
    if value != value.lower():
        return f"package_name {value!r} must be lower case (PEP 8 module names)"
    if keyword.iskeyword(value):
        return f"package_name {value!r} is a Python keyword"
    if keyword.issoftkeyword(value):
        return f"package_name {value!r} is a Python soft keyword (match, case, type, _)"
    if value in stdlib_modules():
        return f"package_name {value!r} shadows the standard-library module {value!r}"
    if value in DEPENDENCY_MODULES:
        return f"package_name {value!r} shadows {value!r}, which the generated project uses"
    return None


def check_project_slug(value: str) -> str | None:
    """Return what is wrong with ``value`` as the project slug, or None if it is fine."""
    if not value:
        return "project_slug is empty (give one, or a project_name with letters or digits)"
    if not SLUG_CHARS.fullmatch(value):
        bad = "".join(dict.fromkeys(c for c in value if not SLUG_CHARS.fullmatch(c)))
        return f"project_slug {value!r} has characters outside [a-z0-9-]: {bad!r}"
    if not value[0].isalpha():
        return f"project_slug {value!r} must start with a letter"
    if value.endswith("-"):
        return f"project_slug {value!r} must not end with '-'"
    return None


def check_author_email(value: str) -> str | None:
    """Return what is wrong with ``value`` as the author's email address, or None if it is fine."""
    if not EMAIL.fullmatch(value):
        return f"author_email {value!r} is not an email address (like name@example.com)"
    return None


# (option, value, other option, value it cannot go with, why): combinations that cannot work.
UNSUPPORTED: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "workshop",
        "yes",
        "sample",
        "minimal",
        "the workshop's modules run on the pipeline sample: choose sample=pipeline or workshop=no",
    ),
)


def check_combination(answers: dict[str, object]) -> str | None:
    """Return why the chosen options cannot go together, or None if they can."""
    for option, value, other, other_value, why in UNSUPPORTED:
        if str(answers.get(option)) == value and str(answers.get(other)) == other_value:
            return f"{option}={value} with {other}={other_value}: {why}"
    return None


def first_problem(answers: dict[str, object]) -> str | None:
    """Return the first problem in ``answers``, in the order the questions are asked, or None."""
    checks = (
        ("project_slug", check_project_slug),
        ("package_name", check_package_name),
        ("author_email", check_author_email),
    )
    for key, check in checks:
        problem = check(str(answers.get(key, "")))
        if problem:
            return problem
    return check_combination(answers)


def say(line: str) -> None:
    """Write ``line`` to stderr, escaping what the terminal's encoding cannot show."""
    try:
        sys.stderr.write(line + "\n")
    except UnicodeEncodeError:
        sys.stderr.write(line.encode("ascii", "backslashreplace").decode("ascii") + "\n")


def main() -> int:
    """Check the rendered answers: return 0 if they are fine, else print the problem, return 1."""
    problem = first_problem(rendered_answers())
    if problem is None:
        return 0
    say(f"error: {problem}")
    return 1


if __name__ == "__main__":
    sys.exit(main())

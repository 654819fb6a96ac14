"""The hooks: bad answers are refused with one line and leave nothing behind; odd names are safe."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import jinja2
import pytest
from bakery import (
    CHOICES,
    ODD_ANSWERS,
    ODD_VALUES,
    TEMPLATE_DIR,
    bake,
    bake_cli,
    load_hook,
    recorded_answers,
)

PRE = load_hook("pre_gen_project")
POST = load_hook("post_gen_project")

# (answers given on the command line, the one error line the pre-gen hook must print)
BAD_ANSWERS = [
    ({"package_name": ""}, "error: package_name is empty"),
    (
        {"package_name": "my-service"},
        "error: package_name 'my-service' is not a valid Python identifier"
        " (letters, digits and _, not starting with a digit)",
    ),
    (
        {"package_name": "2fast"},
        "error: package_name '2fast' is not a valid Python identifier"
        " (letters, digits and _, not starting with a digit)",
    ),
    ({"package_name": "café"}, "error: package_name 'café' must be ASCII"),
    ({"package_name": "class"}, "error: package_name 'class' is a Python keyword"),
    (
        {"package_name": "Invoices"},
        "error: package_name 'Invoices' must be lower case (PEP 8 module names)",
    ),
    (
        {"package_name": "drill"},
        "error: package_name 'drill' shadows 'drill', which the generated project uses",
    ),
    (
        {"package_name": "match"},
        "error: package_name 'match' is a Python soft keyword (match, case, type, _)",
    ),
    (
        {"package_name": "json"},
        "error: package_name 'json' shadows the standard-library module 'json'",
    ),
    (
        {"package_name": "asyncio"},
        "error: package_name 'asyncio' shadows the standard-library module 'asyncio'",
    ),
    (
        {"package_name": "temporalio"},
        "error: package_name 'temporalio' shadows 'temporalio', which the generated project uses",
    ),
    (
        {"package_name": "httpx"},
        "error: package_name 'httpx' shadows 'httpx', which the generated project uses",
    ),
    (
        {"package_name": "tests"},
        "error: package_name 'tests' shadows 'tests', which the generated project uses",
    ),
    # A project name whose derived package name is a keyword.
    ({"project_name": "Class"}, "error: package_name 'class' is a Python keyword"),
    (
        {"project_slug": "My_Service"},
        "error: project_slug 'My_Service' has characters outside [a-z0-9-]: 'M_S'",
    ),
    (
        {"project_slug": "my service"},
        "error: project_slug 'my service' has characters outside [a-z0-9-]: ' '",
    ),
    ({"project_slug": "1st-service"}, "error: project_slug '1st-service' must start with a letter"),
    ({"project_slug": "service-"}, "error: project_slug 'service-' must not end with '-'"),
    (
        {"author_email": "not-an-email"},
        "error: author_email 'not-an-email' is not an email address (like name@example.com)",
    ),
    (
        {"author_email": "me@localhost"},
        "error: author_email 'me@localhost' is not an email address (like name@example.com)",
    ),
    (
        {"author_email": "me @example.com"},
        "error: author_email 'me @example.com' is not an email address (like name@example.com)",
    ),
    (
        {"author_email": ""},
        "error: author_email '' is not an email address (like name@example.com)",
    ),
    # A combination that cannot work.
    (
        {"sample": "minimal", "workshop": "yes"},
        "error: workshop=yes with sample=minimal: the workshop's modules run on the pipeline"
        " sample: choose sample=pipeline or workshop=no",
    ),
]


@pytest.mark.parametrize(
    ("answers", "message"),
    BAD_ANSWERS,
    ids=[",".join(f"{k}={v!r}" for k, v in a.items()) for a, _ in BAD_ANSWERS],
)
def test_bad_answer_is_refused(answers: dict[str, str], message: str, tmp_path: Path) -> None:
    result = bake_cli(tmp_path, answers)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [message], result.stderr
    assert list(tmp_path.iterdir()) == [], "cookiecutter left the half-made project behind"


@pytest.mark.parametrize("answers", [{"project_name": "!!!"}, {"project_slug": ""}])
def test_empty_slug_is_refused(answers: dict[str, str], tmp_path: Path) -> None:
    """An empty slug is refused and nothing is written.

    An empty slug names the output folder itself, which exists, so cookiecutter stops before the
    hook with its own "already exists" error. With --overwrite-if-exists the hook runs and says why.
    """
    result = bake_cli(tmp_path, answers)
    assert result.returncode != 0
    assert "already exists" in result.stderr + result.stdout
    assert list(tmp_path.iterdir()) == []
    result = bake_cli(tmp_path, answers, "--overwrite-if-exists")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: project_slug is empty (give one, or a project_name with letters or digits)"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "email", ["you@example.com", "first.last+tag@mail.example.co.uk", "zoë@bücher.de", "a_b@x-y.io"]
)
def test_good_emails(email: str) -> None:
    assert PRE.check_author_email(email) is None


@pytest.mark.parametrize("name", ["service", "my_service", "_private", "svc2", "temporal_svc"])
def test_good_package_names(name: str) -> None:
    assert PRE.check_package_name(name) is None


@pytest.mark.parametrize("slug", ["service", "my-temporal-service", "s3-sync", "a"])
def test_good_slugs(slug: str) -> None:
    assert PRE.check_project_slug(slug) is None


@pytest.mark.parametrize("hook", ["pre_gen_project", "post_gen_project"])
def test_hook_reads_odd_answers_as_data(hook: str, tmp_path: Path) -> None:
    """Render the hook as cookiecutter does; odd values come back exactly, nothing is evaluated."""
    values = {
        **ODD_VALUES,
        "author_email": "you@example.com",
        "tricky": "ends with a backslash \\",
        "quotes": "''' \"\"\" ' \" `",
        "newline": "two\nlines\r\n\ttab",
        "script": "</script><!-- & -->",
    }
    source = (TEMPLATE_DIR / "hooks" / f"{hook}.py").read_text(encoding="utf-8")
    rendered = jinja2.Environment().from_string(source).render(cookiecutter=values)
    path = tmp_path / f"{hook}.py"
    path.write_text(rendered, encoding="utf-8")
    namespace: dict[str, object] = {"__name__": "rendered_hook"}
    exec(compile(rendered, str(path), "exec"), namespace)
    assert namespace["rendered_answers"]() == values  # type: ignore[operator]


def test_hooks_use_only_the_standard_library() -> None:
    for hook in ("pre_gen_project", "post_gen_project"):
        tree = ast.parse((TEMPLATE_DIR / "hooks" / f"{hook}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__", f"{hook}: {name}"


def test_odd_names_bake(tmp_path: Path) -> None:
    """The odd values reach the project literally (test_bake runs all its checks on them too)."""
    project = bake(tmp_path, ODD_ANSWERS)
    recorded = recorded_answers(project)
    for key, value in ODD_VALUES.items():
        assert recorded[key] == value
    assert project.name == "unicode-quoted-service-x"
    assert recorded["package_name"] == "unicode_quoted_service_x"


def test_post_gen_prints_next_commands(tmp_path: Path) -> None:
    result = bake_cli(tmp_path, {})
    assert result.returncode == 0, result.stderr
    (project,) = tmp_path.iterdir()
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert any(line.startswith("cd ") and line.endswith(project.name) for line in lines)
    assert any(line.startswith("make run") for line in lines)
    assert any(line.startswith("make test") for line in lines)


# --- post-gen removal table -------------------------------------------------------------------

SAMPLE_TABLE = {
    "state_store": {
        "sqlite": ["src/{package_name}/redis_store.py", "deploy/redis.yaml"],
        "redis": [],
    },
    "workshop": {"no": ["workshop/"], "yes": []},
}


def make_tree(root: Path) -> None:
    """Create a small project tree with files for every option of SAMPLE_TABLE."""
    for relative in (
        "src/pkg/__init__.py",
        "src/pkg/redis_store.py",
        "deploy/redis.yaml",
        "deploy/app.yaml",
        "workshop/01-intro.md",
        "workshop/img/a.png",
    ):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text("x", encoding="utf-8")


def test_remove_unchosen_deletes_files_and_folders(tmp_path: Path) -> None:
    make_tree(tmp_path)
    answers = {"package_name": "pkg", "state_store": "sqlite", "workshop": "no"}
    removed = POST.remove_unchosen(tmp_path, answers, SAMPLE_TABLE)
    assert sorted(path.relative_to(tmp_path.resolve()).as_posix() for path in removed) == [
        "deploy/redis.yaml",
        "src/pkg/redis_store.py",
        "workshop",
    ]
    assert (tmp_path / "deploy/app.yaml").is_file()
    assert (tmp_path / "src/pkg/__init__.py").is_file()
    assert not (tmp_path / "workshop").exists()


def test_remove_unchosen_keeps_chosen_files(tmp_path: Path) -> None:
    make_tree(tmp_path)
    answers = {"package_name": "pkg", "state_store": "redis", "workshop": "yes"}
    assert POST.remove_unchosen(tmp_path, answers, SAMPLE_TABLE) == []
    assert (tmp_path / "src/pkg/redis_store.py").is_file()
    assert (tmp_path / "workshop/img/a.png").is_file()


def test_remove_unchosen_refuses_missing_and_outside_paths(tmp_path: Path) -> None:
    make_tree(tmp_path)
    answers = {"package_name": "pkg", "opt": "a"}
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        POST.remove_unchosen(tmp_path, answers, {"opt": {"a": ["nope.txt"]}})
    with pytest.raises(ValueError, match="outside"):
        POST.remove_unchosen(tmp_path, answers, {"opt": {"a": ["../elsewhere"]}})
    with pytest.raises(KeyError, match="unknown"):
        POST.remove_unchosen(tmp_path, answers, {"unknown": {"a": ["deploy"]}})


def test_post_gen_moves_the_minimal_app_into_place(tmp_path: Path) -> None:
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "app.py").write_text("pipeline", encoding="utf-8")
    (package / "app_minimal.py").write_text("minimal", encoding="utf-8")
    moved = POST.move_chosen(tmp_path, {"sample": "minimal", "package_name": "pkg"})
    assert moved == [package / "app.py"]
    assert (package / "app.py").read_text(encoding="utf-8") == "minimal"
    assert not (package / "app_minimal.py").exists()
    assert POST.move_chosen(tmp_path, {"sample": "pipeline", "package_name": "pkg"}) == []
    with pytest.raises(FileNotFoundError):
        POST.move_chosen(tmp_path, {"sample": "minimal", "package_name": "pkg"})


def test_post_gen_table_matches_cookiecutter_json() -> None:
    """Every option and value in the real tables is a choice option and one of its choices."""
    for option, by_value in [*POST.DELETE_WHEN.items(), *POST.MOVE_WHEN.items()]:
        assert option in CHOICES, f"{option} is not a choice option in cookiecutter.json"
        for value in by_value:
            assert value in CHOICES[option], f"{option}={value} is not one of its choices"

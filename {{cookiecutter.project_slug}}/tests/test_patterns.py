"""docs/patterns.md, proven: each pattern works copied alone into another project.

The doc is the one list: its "Files to copy", "Dependencies" and "Tested by" lines are read
here. Fast tests: the files listed are exactly those the usage needs (every import inside
the package followed, lazy ones too) and the dependencies exactly their third-party imports
(one imported inside a function may be listed as required or as optional).
Slow tests: per pattern, only the listed files go into an empty package `yourpackage`, in a
venv that holds only the listed dependencies (this venv's versions, from uv's cache when it
holds them; built once and kept in pytest's cache folder), and the pattern's script from
tests/patterns/ runs there.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from {{ cookiecutter.package_name }}.runtime.settings import (
    ENV_PREFIX,
)

from .conftest import PACKAGE, address_of, run_in_group
from .runtime.test_health import get

PROJECT = Path(__file__).resolve().parents[1]
# patterns.md (the runtime's) and, in a pipeline project, patterns-pipeline.md (the sample's).
DOCS = sorted((PROJECT / "docs").glob("patterns*.md"))
SOURCE = PROJECT / "src" / PACKAGE
SMOKES = PROJECT / "tests" / "patterns"
SCRATCH = "yourpackage"  # the package name the doc's usage and the smoke scripts import
UV = Path(sys.executable).parent / "uv"
PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Pattern:
    """One section of docs/patterns.md."""

    title: str
    files: frozenset[str]  # relative to the package
    requires: frozenset[str]  # distributions, canonical names
    optional: frozenset[str]
    smoke: Path
    usage: str

    @property
    def id(self) -> str:
        return self.smoke.stem


def read_patterns(text: str) -> list[Pattern]:
    patterns = []
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        title = section.splitlines()[0].strip()
        lines = dict(re.findall(r"^\*\*(.+?):\*\* (.+)$", section, flags=re.MULTILINE))
        usage = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
        assert usage, f"{title}: no usage block"
        required, _, optional = lines["Dependencies"].partition("Optional:")
        (smoke,) = re.findall(r"`([^`]+)`", lines["Tested by"])
        patterns.append(
            Pattern(
                title=title,
                files=frozenset(re.findall(r"`([^`]+)`", lines["Files to copy"])),
                requires=_distributions(required),
                optional=_distributions(optional),
                smoke=PROJECT / smoke,
                usage=usage.group(1),
            )
        )
    return patterns


def _distributions(text: str) -> frozenset[str]:
    names = re.findall(r"`([^`]+)`", text)
    return frozenset(canonicalize_name(n) for n in names if PACKAGE_NAME.fullmatch(n))


PATTERNS = [p for doc in DOCS for p in read_patterns(doc.read_text(encoding="utf-8"))]


# -- what a file imports ----------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    level: int  # 0 for absolute imports
    module: str
    names: tuple[str, ...]  # empty for `import x`
    lazy: bool  # inside a function: needed only when it runs


class _Imports(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[Import] = []
        self.depth = 0

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = _function  # noqa: N815

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.orelse:  # the `if` body is for type checkers only
                self.visit(statement)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append(Import(0, alias.name, (), self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names = tuple(alias.name for alias in node.names)
        self.found.append(Import(node.level, node.module or "", names, self.depth > 0))


def imports_of(source: str) -> list[Import]:
    tree = compile(source, "<source>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    visitor = _Imports()
    visitor.visit(tree)
    return visitor.found


def _module_file(parts: list[str]) -> str | None:
    """The file of package module `parts` (relative to the package), if there is one."""
    if not parts:
        return "__init__.py"
    for candidate in ("/".join(parts) + ".py", "/".join(parts) + "/__init__.py"):
        if (SOURCE / candidate).is_file():
            return candidate
    return None


def internal_files(imp: Import, importer: str | None) -> set[str] | None:
    """Package files an import needs (None if it is not a package import).

    `importer` is the importing file relative to the package; None for code outside it,
    which imports the package by name.
    """
    if imp.level:
        assert importer is not None, f"relative import outside the package: {imp}"
        package = importer.split("/")[:-1]
        base = package[: len(package) - (imp.level - 1)]
        parts = base + (imp.module.split(".") if imp.module else [])
    else:
        top, *rest = imp.module.split(".")
        if top not in (SCRATCH, PACKAGE):
            return None
        parts = rest
    files: set[str] = set()
    needs_module = not imp.names
    for name in imp.names:
        submodule = _module_file([*parts, name])
        if submodule is not None:
            files.add(submodule)
        else:
            needs_module = True
    if needs_module:
        module = _module_file(parts)
        assert module is not None, f"{importer or 'usage'}: no module {'.'.join(parts)}"
        files.add(module)
    return files


def closure(roots: set[str]) -> set[str]:
    """`roots` and every package file they import, directly or not, with subpackage inits.

    The package's own `__init__.py` counts only when a name is imported from it: the
    project copied into has a package already.
    """
    found: set[str] = set()
    todo = list(roots)
    while todo:
        relative = todo.pop()
        if relative in found:
            continue
        found.add(relative)
        folders = relative.split("/")[:-1]
        for depth in range(1, len(folders) + 1):
            todo.append("/".join(folders[:depth]) + "/__init__.py")
        for imp in imports_of((SOURCE / relative).read_text(encoding="utf-8")):
            todo.extend(internal_files(imp, relative) or ())
    return found


def package_imports(source: str) -> set[str]:
    """Package files that code outside the package (usage, a smoke script) imports."""
    files: set[str] = set()
    for imp in imports_of(source):
        files |= internal_files(imp, None) or set()
    return files


def _owners(module: str, candidates: list[str]) -> list[str]:
    """The distributions of `candidates` that hold `module`: of a namespace package such as
    `opentelemetry` (the API, the SDK, each exporter), only the one the import names."""
    if len(candidates) == 1:
        return candidates
    path = module.replace(".", "/")
    owners = [
        name
        for name in candidates
        if any(f == f"{path}.py" or f.startswith(f"{path}/") for f in _files_of(name))
    ]
    return owners or candidates


@functools.cache  # a walk of every installed distribution's files: once per process
def _distributions_by_module() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def _files_of(distribution: str) -> tuple[str, ...]:
    return tuple(str(f) for f in importlib.metadata.files(distribution) or ())


def third_party(imports: list[Import]) -> dict[str, bool]:
    """Distribution -> imported lazily only, for the imports that are neither stdlib nor ours."""
    by_module = _distributions_by_module()
    found: dict[str, bool] = {}
    for imp in imports:
        top = imp.module.split(".")[0]
        if imp.level or top in sys.stdlib_module_names or top in (SCRATCH, PACKAGE):
            continue
        assert top in by_module, f"{top} is imported but not installed"
        for distribution in _owners(imp.module, by_module[top]):
            name = canonicalize_name(distribution)
            found[name] = found.get(name, True) and imp.lazy
    return found


def top_level_names(relative: str) -> set[str]:
    tree = ast.parse((SOURCE / relative).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found = (t for target in targets for t in ast.walk(target))
            names |= {t.id for t in found if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


# -- fast: the lists are exact ----------------------------------------------------------


def test_the_contents_list_exactly_the_sections_and_each_has_its_own_script() -> None:
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        listed = re.findall(r"^- \[(.+?)\]\(#[a-z0-9-]+\)$", text, flags=re.MULTILINE)
        assert listed == [pattern.title for pattern in read_patterns(text)], doc.name
    scripts = [pattern.smoke for pattern in PATTERNS]
    assert len(set(scripts)) == len(scripts)
    assert set(scripts) == set(SMOKES.glob("*.py")), "a script in tests/patterns/ no pattern names"


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.id)
def test_files_to_copy_are_exactly_what_the_usage_needs(pattern: Pattern) -> None:
    needed = closure(package_imports(pattern.usage))
    listed = set(pattern.files)
    assert not needed - listed, f"{pattern.title}: listed files import {sorted(needed - listed)}"
    assert not listed - needed, f"{pattern.title}: nothing needs {sorted(listed - needed)}"
    smoke_needs = closure(package_imports(pattern.smoke.read_text(encoding="utf-8")))
    assert smoke_needs <= listed, f"{pattern.smoke.name} uses {sorted(smoke_needs - listed)}"


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.id)
def test_dependencies_are_exactly_the_third_party_imports(pattern: Pattern) -> None:
    imports = [imp for f in pattern.files for imp in imports_of((SOURCE / f).read_text("utf-8"))]
    found = third_party(imports + imports_of(pattern.usage))
    # Imported at the top: required. Imported in a function: required or optional, as the doc
    # says (pool.py imports the SDK only when a child dies, yet always needs it then).
    eager = {name for name, lazy in found.items() if not lazy}
    assert eager <= pattern.requires <= set(found), f"{pattern.title}: imports {found}"
    assert set(found) - pattern.requires == pattern.optional, f"{pattern.title}: optional {found}"
    smoke = third_party(imports_of(pattern.smoke.read_text(encoding="utf-8")))
    assert set(smoke) <= pattern.requires, f"{pattern.smoke.name} needs {sorted(smoke)}"


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.id)
def test_the_usage_imports_names_that_exist(pattern: Pattern) -> None:
    for imp in imports_of(pattern.usage):
        if imp.module.split(".")[0] != SCRATCH:
            continue
        parts = imp.module.split(".")[1:]
        module = _module_file(parts)
        assert module is not None, f"{pattern.title}: no module {imp.module}"
        missing = {n for n in imp.names if n not in top_level_names(module)}
        assert not missing, f"{pattern.title}: {imp.module} has no {sorted(missing)}"


# -- slow: each pattern copied alone works ----------------------------------------------


def installed_closure(names: frozenset[str]) -> list[str]:
    """`name==version` of `names` and everything they need, as installed in this venv."""
    pins: dict[str, str] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in pins:
            continue
        distribution = importlib.metadata.distribution(name)
        pins[name] = distribution.version
        for line in distribution.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return sorted(f"{name}=={version}" for name, version in pins.items())


def make_venv(folder: Path, pins: list[str]) -> Path:
    """A venv with only `pins` (`name==version`, dependencies included); its python.

    uv installs from its cache, offline, when the cache holds every wheel (it does after
    `make install`); otherwise it downloads them from the package index.
    """
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env |= {"UV_PYTHON_DOWNLOADS": "never", "UV_COMPILE_BYTECODE": "0"}
    uv_venv = [str(UV), "venv", "--quiet", "--python", sys.executable, str(folder)]
    subprocess.run(uv_venv, cwd=folder.parent, env=env, check=True, timeout=120)
    python = folder / "bin" / "python"
    if pins:
        install = [str(UV), "pip", "install", "--quiet", "--python", str(python), "--no-deps"]
        offline = subprocess.run(
            [*install, "--offline", *pins], cwd=folder, env=env, capture_output=True, timeout=120
        )
        if offline.returncode != 0:
            subprocess.run([*install, *pins], cwd=folder, env=env, check=True, timeout=600)
    return python


VENV_UNUSED_DAYS = 14  # a cached venv no run has used for this long is deleted


@pytest.fixture(scope="session")
def venv_with(request: pytest.FixtureRequest) -> Callable[[frozenset[str]], Path]:
    """One venv per distinct set of dependencies, kept in pytest's cache folder
    (`.pytest_cache/d/pattern-venvs/`, removed by `make clean`) from one run to the next, as
    mypy and ruff keep theirs: the first run builds it under a file lock and the others,
    xdist workers and later runs alike, reuse it with the bytecode its first smoke run wrote
    (a new venv compiles the SDK at its first import: seconds of CPU). Its name is the hash
    of the pins and of this interpreter, so new pins make a new one."""
    assert request.config.cache is not None, "test_patterns.py needs pytest's cacheprovider"
    shared = request.config.cache.mkdir("pattern-venvs")

    @functools.cache  # this worker's later patterns: no metadata walk, no lock
    def get_venv(requires: frozenset[str]) -> Path:
        pins = installed_closure(requires)
        key = " ".join([sys.version, os.path.realpath(sys.executable), *pins])
        name = "venv-" + hashlib.sha256(key.encode()).hexdigest()[:12]
        folder, ready = shared / name, shared / f"{name}.ready"
        with (shared / f"{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not ready.exists():
                shutil.rmtree(folder, ignore_errors=True)  # a build that was interrupted
                make_venv(folder, pins)
                forget_unused_venvs(shared)
            ready.touch()  # its last use
        return folder / "bin" / "python"

    return get_venv


def forget_unused_venvs(shared: Path) -> None:
    """Delete the cached venvs that no run has used for VENV_UNUSED_DAYS (older pins)."""
    oldest = time.time() - VENV_UNUSED_DAYS * 86400
    for ready in shared.glob("venv-*.ready"):
        if ready.stat().st_mtime < oldest:
            ready.unlink()
            shutil.rmtree(ready.with_suffix(""), ignore_errors=True)


def scratch_project(pattern: Pattern, folder: Path) -> Path:
    """`folder` with `yourpackage/` holding only the listed files, and the smoke script."""
    package = folder / SCRATCH
    package.mkdir()
    (package / "__init__.py").write_text("")  # the existing project's package
    for relative in pattern.files:
        target = package / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOURCE / relative, target)
    script = folder / "smoke.py"
    shutil.copyfile(pattern.smoke, script)
    return script


def smoke_env() -> dict[str, str]:
    """Ours without settings, Temporal variables, a venv or PYTHONPATH that would leak in.

    Bytecode may be written: the scratch venv is new, and its pool children import again.
    No proxy: the scripts only talk to servers on 127.0.0.1.
    """
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONWARNINGS"}
    drop |= {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith((ENV_PREFIX, "TEMPORAL_")) and k.upper() not in drop
    }


ONE_SHOT = [pattern for pattern in PATTERNS if pattern.id != "graceful_worker"]
(GRACEFUL_WORKER,) = [pattern for pattern in PATTERNS if pattern.id == "graceful_worker"]


def run_smoke(command: list[str], cwd: Path, timeout: float = 300.0) -> tuple[int, str, str]:
    """Run a smoke script in a process group of its own (`run_in_group`); return its exit
    code, stdout and stderr."""
    result = run_in_group(command, timeout=timeout, cwd=cwd, env=smoke_env())
    return result.returncode, result.stdout, result.stderr


@pytest.mark.slow(seconds=2)
@pytest.mark.parametrize("pattern", ONE_SHOT, ids=lambda p: p.id)
def test_pattern_works_copied_alone(
    pattern: Pattern, tmp_path: Path, venv_with: Callable[[frozenset[str]], Path]
) -> None:
    python = venv_with(pattern.requires)
    script = scratch_project(pattern, tmp_path)
    code, stdout, stderr = run_smoke(
        [str(python), script.name, str(tmp_path / "state" / "state.db")], cwd=tmp_path
    )
    output = f"exit code {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    assert code == 0, output
    assert stdout.splitlines()[-1:] == ["ok"], output


@workflow.defn(sandboxed=False)
class CallPause:
    """Calls the smoke worker's `pause` activity on its task queue."""

    @workflow.run
    async def run(self, activity_queue: str, gate_file: str) -> int:
        paused: int = await workflow.execute_activity(  # by name: the result is typed here
            "pause",
            gate_file,
            result_type=int,
            task_queue=activity_queue,
            start_to_close_timeout=timedelta(seconds=300),  # a guard: the test opens the gate
        )
        return paused


class SmokeWorker:
    """The graceful worker's smoke script as a process: the leader of its own process group,
    its stdout and stderr read all along and kept, to be shown by every assertion."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        assert process.stdout is not None
        assert process.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(process.stdout, self.stdout, self._lines)),
            asyncio.create_task(self._read(process.stderr, self.stderr, None)),
        ]

    @staticmethod
    async def _read(
        stream: asyncio.StreamReader, kept: list[str], lines: asyncio.Queue[str | None] | None
    ) -> None:
        while line := await stream.readline():
            kept.append(line.decode(errors="replace"))
            if lines is not None:
                lines.put_nowait(kept[-1])
        if lines is not None:
            lines.put_nowait(None)  # end of output

    def shown(self) -> str:
        """Everything it has printed so far, and its exit code if it has exited."""
        return (
            f"exit code {self.process.returncode}\n"
            f"stdout:\n{''.join(self.stdout)}\nstderr:\n{''.join(self.stderr)}"
        )

    async def next_line(self, timeout: float = 120.0) -> str:
        """The next line of its stdout (a timeout only stops a broken test)."""
        try:
            line = await asyncio.wait_for(self._lines.get(), timeout)
        except TimeoutError:
            raise AssertionError(f"no line in {timeout:g} s:\n{self.shown()}") from None
        assert line is not None, f"its stdout ended:\n{self.shown()}"
        return line

    async def finish(self, timeout: float = 120.0) -> int:
        """Its exit code, once it has exited and all its output is read."""
        try:
            await asyncio.wait_for(asyncio.gather(self.process.wait(), *self._readers), timeout)
        except TimeoutError:
            raise AssertionError(f"it did not exit in {timeout:g} s:\n{self.shown()}") from None
        assert self.process.returncode is not None
        return self.process.returncode

    async def kill(self) -> None:
        """Kill its whole process group, however the test ended."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


@pytest.mark.slow(seconds=2)
async def test_graceful_worker_works_copied_alone(
    client: Client, tmp_path: Path, venv_with: Callable[[frozenset[str]], Path]
) -> None:
    python = venv_with(GRACEFUL_WORKER.requires)
    script = scratch_project(GRACEFUL_WORKER, tmp_path)
    activity_queue = f"patterns-{uuid.uuid4().hex[:8]}"
    gate_file = tmp_path / "gate-open"  # `pause` runs until the test creates it
    worker = SmokeWorker(
        await asyncio.create_subprocess_exec(
            str(python),
            script.name,
            address_of(client),
            activity_queue,
            "0",  # any free port: it prints the one it got
            cwd=tmp_path,
            env=smoke_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    )
    try:
        line = await worker.next_line()
        assert line.startswith("health port "), worker.shown()
        health = f"http://127.0.0.1:{int(line.split()[-1])}"

        async def probe(path: str) -> tuple[int, str]:
            return await asyncio.to_thread(get, f"{health}{path}")

        async def readyz_until(wanted: Callable[[int], bool]) -> tuple[int, str]:
            """Poll /readyz until its status is as `wanted` (a guard stops a broken test)."""
            answer = (0, "never answered")
            deadline = asyncio.get_running_loop().time() + 120
            while asyncio.get_running_loop().time() < deadline:
                try:
                    answer = await probe("/readyz")
                except OSError as error:  # no answer (a timeout under load): ask again
                    answer = (0, repr(error))
                else:
                    if wanted(answer[0]):
                        return answer
                assert worker.process.returncode is None, f"it exited:\n{worker.shown()}"
                await asyncio.sleep(0.02)
            raise AssertionError(f"/readyz stayed {answer}:\n{worker.shown()}")

        ready = await readyz_until(lambda status: status == 200)
        assert ready == (200, "ready\n"), worker.shown()
        async with Worker(client, task_queue=f"{activity_queue}-wf", workflows=[CallPause]):
            handle = await client.start_workflow(
                CallPause.run,
                args=[activity_queue, str(gate_file)],
                id=f"patterns-{uuid.uuid4()}",
                task_queue=f"{activity_queue}-wf",
            )
            try:
                line = await worker.next_line()
                assert line == "activity started\n", worker.shown()
                # `pause` now waits for the gate: everything below happens while it runs.
                worker.process.send_signal(signal.SIGTERM)
                draining = await readyz_until(lambda status: status != 200)
                alive = await probe("/healthz")
                assert worker.process.returncode is None, worker.shown()
                assert (draining, alive) == ((503, "not ready\n"), (200, "ok\n")), worker.shown()
                gate_file.touch()  # the activity may finish now, during the drain
                attempt = await asyncio.wait_for(handle.result(), 120)
            finally:
                gate_file.touch()
                if not (await handle.describe()).close_time:
                    await handle.terminate("test over")
        code = await worker.finish()
    finally:
        await worker.kill()
    assert attempt == 1, worker.shown()
    assert code == 0, worker.shown()
    assert "".join(worker.stdout).endswith("activity started\nstopped\n"), worker.shown()
    assert "signal received: draining" in "".join(worker.stderr), worker.shown()

"""The runtime knows no sample: nothing under src/<package>/runtime/ imports app.py or a
sample package, so replacing the sample never touches the runtime."""

from __future__ import annotations

import ast
from pathlib import Path

from ..conftest import PACKAGE, PROJECT

RUNTIME = PROJECT / "src" / PACKAGE / "runtime"


def outside_imports(path: Path) -> list[str]:
    """The imports of `path` that reach into the package outside runtime/ (the package's
    own `__init__` for SERVICE_NAME excepted)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                module = node.module or ""
                inside = module == PACKAGE or module.startswith(f"{PACKAGE}.runtime")
                if module.split(".")[0] == PACKAGE and not inside:
                    found.append(module)
            elif node.level == 2 and node.module is not None:  # from ..x: outside runtime/
                found.append(f"..{node.module}")
            elif node.level > 2:
                found.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found += [
                alias.name
                for alias in node.names
                if alias.name.split(".")[0] == PACKAGE
                and not alias.name.startswith(f"{PACKAGE}.runtime")
            ]
    return found


def test_the_runtime_imports_nothing_of_the_sample_or_app() -> None:
    modules = sorted(RUNTIME.glob("*.py"))
    assert len(modules) > 10  # the folder is where this test thinks it is
    offending = {p.name: outside_imports(p) for p in modules if outside_imports(p)}
    assert offending == {}


def test_the_check_sees_an_import_of_the_sample(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text(
        f"from .. import SERVICE_NAME\nfrom ..app import SERVICE\nfrom {PACKAGE}.app import x\n"
        f"import {PACKAGE}.runtime.store\nfrom .store import StateStore\n",
        encoding="utf-8",
    )
    assert outside_imports(module) == ["..app", f"{PACKAGE}.app"]

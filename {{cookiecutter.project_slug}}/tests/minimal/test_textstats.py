"""The CPU function: right counts, deterministic in every process, and pure Python (GIL)."""

from __future__ import annotations

import subprocess
import sys

from {{ cookiecutter.package_name }}.minimal import (
    textstats,
)
from {{ cookiecutter.package_name }}.minimal.textstats import (
    page_stats,
)

from ..toolkit.http_site import random_words


def test_counts_words_distinct_words_and_the_most_common() -> None:
    stats = page_stats("The cat and the hat. THE END, and that's it", rounds=1)
    assert (stats.words, stats.unique) == (10, 7)
    assert stats.top == [("the", 3), ("and", 2), ("cat", 1), ("end", 1), ("hat", 1)]


def test_the_fingerprint_depends_on_the_text_and_the_rounds() -> None:
    text = random_words(200, "fingerprint")
    once = page_stats(text, rounds=3)
    assert page_stats(text, rounds=3) == once
    assert page_stats(text, rounds=4).fingerprint != once.fingerprint
    assert page_stats(text + " more", rounds=3).fingerprint != once.fingerprint
    assert page_stats("", rounds=3).words == 0


def test_the_result_is_the_same_in_another_process() -> None:
    """Memoized results are shared between workers: no per-process state may leak in."""
    text = random_words(300, "processes")
    code = (
        "import sys\n"
        f"from {textstats.__name__} import page_stats\n"
        "print(repr(page_stats(sys.stdin.read(), 5)))"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], input=text, capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == repr(page_stats(text, 5))


def test_a_pool_process_imports_it_without_pydantic_or_the_sdk() -> None:
    """Every pool process imports this module before its first page, and a worker starts a
    pool process for each core, again after one dies: pydantic alone would triple that."""
    code = f"import sys, {textstats.__name__}; print(*sys.modules)"
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = {name.split(".")[0] for name in child.stdout.split()}
    assert not {"pydantic", "temporalio", "aiohttp"} & loaded, sorted(loaded)

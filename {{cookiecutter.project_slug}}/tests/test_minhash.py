"""MinHash: deterministic across processes, and grouping that finds what it should."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from {{ cookiecutter.package_name }}.minhash import (
    near_duplicate_groups,
    signature,
    similarity,
)

from .http_site import random_words

TEXT = random_words(300, "determinism")


def test_signature_is_the_same_in_other_processes() -> None:
    """Two processes with different string-hash seeds compute the same signature."""
    code = (
        "import json, sys\n"
        "from {{ cookiecutter.package_name }}.minhash import signature\n"
        "print(json.dumps(signature(sys.stdin.read(), 64, 3)))"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", code],
            input=TEXT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]
    assert json.loads(outputs[0]) == json.loads(outputs[1]) == signature(TEXT, 64, 3)


def test_similarity_tracks_overlap() -> None:
    base = random_words(400, "base")
    near = random_words(400, "base", change_every=40)
    other = random_words(400, "other")
    assert similarity(signature(base), signature(base)) == 1.0
    assert similarity(signature(base), signature(near)) >= 0.8
    assert similarity(signature(base), signature(other)) < 0.1


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_groups_near_and_identical_documents_only() -> None:
    texts = {
        "d": random_words(400, "base"),
        "a": random_words(400, "base", change_every=40),
        "c": random_words(400, "lonely"),
        "b": random_words(400, "twin"),
        "e": random_words(400, "twin"),
    }
    items = [(name, sha(text), signature(text)) for name, text in texts.items()]
    assert near_duplicate_groups(items, 0.8) == [["a", "d"], ["b", "e"]]
    # At a threshold no near-duplicate reaches, identical bodies are still grouped.
    assert near_duplicate_groups(items, 1.0) == [["b", "e"]]


def test_identical_bodies_group_even_with_different_signatures() -> None:
    items = [("x", "same", [1, 2, 3, 4]), ("y", "same", [5, 6, 7, 8]), ("z", "other", [9] * 4)]
    assert near_duplicate_groups(items, 0.9) == [["x", "y"]]

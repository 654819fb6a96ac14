"""MinHash: deterministic across processes, and grouping that finds what it should."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from array import array

from {{ cookiecutter.package_name }}.pipeline import (
    minhash,
)
from {{ cookiecutter.package_name }}.pipeline.minhash import (
    near_duplicate_groups,
    signature,
    similarity,
)

from ..toolkit.http_site import random_words

TEXT = random_words(300, "determinism")


def test_signature_is_the_same_in_other_processes() -> None:
    """Two processes with different string-hash seeds compute the same signature."""
    code = (
        "import json, sys\n"
        f"from {minhash.__name__} import signature\n"
        "print(json.dumps(signature(sys.stdin.read(), 64, 3)))"
    )
    outputs = []
    for seed in ("1", "2"):
        child = subprocess.run(  # killed on the timeout, which only ends a broken test
            [sys.executable, "-c", code],
            input=TEXT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=120,
        )
        assert child.returncode == 0, child.stdout + child.stderr
        outputs.append(child.stdout)
    assert json.loads(outputs[0]) == json.loads(outputs[1]) == signature(TEXT, 64, 3)


def test_similarity_tracks_overlap() -> None:
    base = random_words(400, "base")
    near = random_words(400, "base", change_every=40)
    other = random_words(400, "other")
    assert similarity(signature(base), signature(base)) == 1.0
    assert similarity(signature(base), signature(near)) >= 0.8
    assert similarity(signature(base), signature(other)) < 0.1


def packed(*texts: str, num_perm: int = 128) -> array[int]:
    """Signatures one after another in one flat array, as stage 3 holds them."""
    signatures = array("I")
    for text in texts:
        signatures.extend(signature(text, num_perm))
    return signatures


def test_groups_near_and_identical_documents_only() -> None:
    texts = [
        random_words(400, "base"),  # 0
        random_words(400, "base", change_every=40),  # 1: near 0
        random_words(400, "lonely"),  # 2
        random_words(400, "twin"),  # 3
        random_words(400, "twin"),  # 4: identical to 3
    ]
    assert near_duplicate_groups(packed(*texts), 128, 0.8) == [[0, 1], [3, 4]]
    # At a threshold no near-duplicate reaches, identical bodies are still grouped.
    assert near_duplicate_groups(packed(*texts), 128, 1.0) == [[3, 4]]


def test_near_duplicates_chain_into_one_group() -> None:
    first = random_words(400, "chain")
    second = random_words(400, "chain", change_every=40)
    third = " ".join(w if i % 20 != 5 else f"other{i}" for i, w in enumerate(second.split()))
    # Their true Jaccard similarities are 0.87 (first, second), 0.74 (second, third) and 0.64
    # (first, third): 512 permutations estimate them to about +-0.02, well either side of 0.69.
    num_perm, threshold = 512, 0.69
    first_sig, second_sig, third_sig = (signature(t, num_perm) for t in (first, second, third))
    # A chain: first ~ second ~ third, but first and third are not alike enough themselves.
    assert similarity(first_sig, third_sig) < threshold
    assert min(similarity(first_sig, second_sig), similarity(second_sig, third_sig)) >= threshold
    texts = packed(third, random_words(50, "x"), first, second, num_perm=num_perm)
    assert near_duplicate_groups(texts, num_perm, threshold) == [[0, 2, 3]]


def test_finds_one_pair_among_many_items() -> None:
    texts = [random_words(30, f"many-{i}") for i in range(1500)]
    texts[1400] = texts[7] + " one more word"
    signatures = packed(*texts, num_perm=32)
    assert signatures.itemsize * len(signatures) == 1500 * 32 * 4  # 4 bytes a value
    assert near_duplicate_groups(signatures, 32, 0.8) == [[7, 1400]]

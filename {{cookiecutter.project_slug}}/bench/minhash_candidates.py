"""The CPU function, measured and chosen: three pure-Python MinHash signatures side by side.

- `multiply_mod`: one 32-bit BLAKE2b hash per shingle, then `num_perm` permutations
  (a*x + b) mod p computed in Python: the classic textbook version, and the template's first.
- `shake_min`: one 512-byte SHAKE-128 digest per shingle gives all 128 values; then an
  element-wise minimum over the shingles (the template's second).
- `one_permutation` (`minhash.signature`, the one the pipeline runs): one 64-bit BLAKE2b hash
  per shingle picks a bin and a value, with optimal densification for empty bins.

Printed: milliseconds per document at two document sizes, and each estimate's error against
the true Jaccard similarity over pairs of near-copies (mean and standard deviation). All
three hold the GIL all the time, so the CPU stage's lesson is the same with any of them.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import time
from array import array
from collections.abc import Callable
from functools import lru_cache

from tests.toolkit.http_site import random_words
from {{ cookiecutter.package_name }}.pipeline import (
    minhash,
)

Candidate = Callable[[str, int, int], list[int]]
MERSENNE_PRIME = (1 << 61) - 1


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> tuple[tuple[int, int], ...]:
    rng = random.Random(20_240_901)  # noqa: S311 (reproducible, not secret)
    return tuple(
        (rng.randrange(1, MERSENNE_PRIME), rng.randrange(0, MERSENNE_PRIME))
        for _ in range(num_perm)
    )


def multiply_mod(text: str, num_perm: int = 128, shingle_size: int = 3) -> list[int]:
    hashes = [
        int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little")
        for s in minhash.shingles(text, shingle_size)
    ]
    return [
        min(((a * h + b) % MERSENNE_PRIME) & minhash.MAX_HASH for h in hashes)
        for a, b in _permutations(num_perm)
    ]


def shake_min(text: str, num_perm: int = 128, shingle_size: int = 3) -> list[int]:
    width = 4 * num_perm
    values = array(
        "I",
        b"".join(
            hashlib.shake_128(s.encode()).digest(width)
            for s in minhash.shingles(text, shingle_size)
        ),
    )
    return [min(values[j::num_perm]) for j in range(num_perm)]


CANDIDATES: dict[str, Candidate] = {
    "multiply_mod": multiply_mod,
    "shake_min": shake_min,
    "one_permutation (chosen)": minhash.signature,
}


def ms_per_document(candidate: Candidate, texts: list[str], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for text in texts:
            candidate(text, 128, 3)
        best = min(best, time.perf_counter() - started)
    return 1000 * best / len(texts)


def jaccard(a: str, b: str) -> float:
    x, y = minhash.shingles(a, 3), minhash.shingles(b, 3)
    return len(x & y) / len(x | y)


def errors(candidate: Candidate, pairs: list[tuple[str, str]]) -> tuple[float, float]:
    """Mean and standard deviation of (estimate - true Jaccard) over `pairs`."""
    diffs = [
        minhash.similarity(candidate(a, 128, 3), candidate(b, 128, 3)) - jaccard(a, b)
        for a, b in pairs
    ]
    return statistics.mean(diffs), statistics.pstdev(diffs)


def main() -> None:
    short = [random_words(150, f"mh-short-{i}") for i in range(200)]
    long = [random_words(2000, f"mh-long-{i}") for i in range(10)]
    pairs = [
        (random_words(150, f"mh-pair-{i}"), random_words(150, f"mh-pair-{i}", change_every=e))
        for i in range(100)
        for e in (40, 10)
    ]
    print("\nMinHash candidates (128 values; pure Python; error vs the true Jaccard similarity)")
    print(f"  {'':<26} {'150 words':>10} {'2,000 words':>12}  {'error mean':>10} {'stdev':>6}")
    for name, candidate in CANDIDATES.items():
        mean, stdev = errors(candidate, pairs)
        print(
            f"  {name:<26} {ms_per_document(candidate, short):>8.2f}ms"
            f" {ms_per_document(candidate, long):>10.2f}ms  {mean:>+10.4f} {stdev:>6.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

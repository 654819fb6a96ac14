"""MinHash: a fixed-size fingerprint of a text for estimating how alike two texts are.

Pure Python on purpose: this is the CPU-bound work of the sample, and pure Python arithmetic
holds the GIL, so threads cannot run it in parallel and processes can. Replace `signature`
with your own CPU-heavy function (it must be a plain, picklable, module-level function).

Deterministic across processes, machines and runs: shingles are hashed with BLAKE2b (never
the built-in `hash()`, which Python randomises per process) and the permutations come
from a generator seeded with a fixed constant.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from itertools import combinations

MERSENNE_PRIME = (1 << 61) - 1
MAX_HASH = (1 << 32) - 1
PERMUTATION_SEED = 20_240_901  # fixed: changing it changes every signature
# Signatures that agree on a whole band of this many values become candidate pairs. With 4
# and 128 permutations, a pair at similarity 0.8 is a candidate with probability > 0.9999.
LSH_ROWS_PER_BAND = 4

Signature = list[int]


@lru_cache(maxsize=8)
def _permutations(num_perm: int) -> tuple[tuple[int, int], ...]:
    """`num_perm` hash functions h(x) = (a*x + b) mod p, the same in every process."""
    rng = random.Random(PERMUTATION_SEED)  # noqa: S311 (reproducible, not secret)
    return tuple(
        (rng.randrange(1, MERSENNE_PRIME), rng.randrange(0, MERSENNE_PRIME))
        for _ in range(num_perm)
    )


def shingles(text: str, size: int) -> set[str]:
    """The set of runs of `size` consecutive words (lower-cased); short texts give one."""
    words = text.lower().split()
    if len(words) <= size:
        return {" ".join(words)}
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def _shingle_hash(shingle: str) -> int:
    return int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=4).digest(), "little")


def signature(text: str, num_perm: int = 128, shingle_size: int = 3) -> Signature:
    """The MinHash signature of `text`: for each permutation, the smallest hashed shingle."""
    hashes = [_shingle_hash(s) for s in shingles(text, shingle_size)]
    return [
        min(((a * h + b) % MERSENNE_PRIME) & MAX_HASH for h in hashes)
        for a, b in _permutations(num_perm)
    ]


def signatures(texts: Sequence[str], num_perm: int, shingle_size: int) -> list[Signature]:
    """Signatures of several texts: one call per chunk sent to a worker process."""
    return [signature(text, num_perm, shingle_size) for text in texts]


def similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity: the share of permutations whose minimums agree."""
    if len(a) != len(b):
        raise ValueError("signatures of different lengths")
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def near_duplicate_groups(
    items: Sequence[tuple[str, str, Signature]], threshold: float
) -> list[list[str]]:
    """Groups of names whose estimated similarity is at or above `threshold`.

    `items` are (name, content SHA-256, signature); identical contents are always grouped.
    Candidate pairs come from locality-sensitive hashing (items that agree on a whole band
    of their signatures), so the work grows with the number of candidates, not with the
    square of the number of items. Each candidate pair is checked against the threshold;
    a group is a connected component of the pairs that pass (A~B and B~C put A, B, C
    together). Each group is sorted, the groups are sorted, and names in no group are
    left out.
    """
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    buckets: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for index, (_, sha256, sig) in enumerate(items):
        buckets[("sha256", sha256)].append(index)
        for start in range(0, len(sig), LSH_ROWS_PER_BAND):
            buckets[(start, *sig[start : start + LSH_ROWS_PER_BAND])].append(index)

    checked: set[tuple[int, int]] = set()
    for members in buckets.values():
        for i, j in combinations(members, 2):
            if (i, j) in checked or root(i) == root(j):
                continue
            checked.add((i, j))
            same = items[i][1] == items[j][1]
            if same or similarity(items[i][2], items[j][2]) >= threshold:
                parent[root(i)] = root(j)

    groups: dict[int, list[str]] = defaultdict(list)
    for index, (name, _, _) in enumerate(items):
        groups[root(index)].append(name)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)

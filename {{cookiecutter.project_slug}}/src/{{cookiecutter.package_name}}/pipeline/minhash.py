"""MinHash: a fixed-size fingerprint of a text for estimating how alike two texts are.

Pure Python on purpose: this is the CPU-bound work of the sample, and pure Python arithmetic
holds the GIL, so threads cannot run it in parallel and processes can. Replace `signature`
with your own CPU-heavy function (it must be a plain, picklable, module-level function).

Deterministic across processes, machines and runs: shingles are hashed with SHAKE-128 (never
the built-in `hash()`, which Python randomises per process).

One SHAKE-128 digest per shingle gives all `num_perm` hash values at once (4 bytes each), and
the signature is their element-wise minimum over the shingles: `num_perm` independent hash
functions, as MinHash needs, for one hash call per shingle. Measured on 150-word documents at
128 permutations (`make bench`): about 4x cheaper than one hash per shingle followed by
`num_perm` multiply-mod permutations in Python. It still holds the GIL the whole time (short
inputs to hashlib, and `min` over Python ints), which is the lesson of the CPU stage.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations

# Signatures that agree on a whole band of this many values become candidate pairs. With 4
# and 128 permutations, a pair at similarity 0.8 is a candidate with probability > 0.9999.
LSH_ROWS_PER_BAND = 4

Signature = list[int]
MAX_HASH = (1 << 32) - 1
"""The largest value in a signature: each is an unsigned 32-bit part of a SHAKE-128 digest."""


def shingles(text: str, size: int) -> set[str]:
    """The set of runs of `size` consecutive words (lower-cased); short texts give one."""
    words = text.lower().split()
    if len(words) <= size:
        return {" ".join(words)}
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def signature(text: str, num_perm: int = 128, shingle_size: int = 3) -> Signature:
    """The MinHash signature of `text`: for each of `num_perm` hash functions, the smallest
    value over its shingles."""
    width = 4 * num_perm  # bytes: num_perm unsigned 32-bit values per shingle
    # Each shingle's values one after another: value j of every shingle is at j + k * num_perm.
    values = array(
        "I",
        b"".join(hashlib.shake_128(s.encode()).digest(width) for s in shingles(text, shingle_size)),
    )
    return [min(values[j::num_perm]) for j in range(num_perm)]


def checked_signature(value: object, num_perm: int) -> Signature:
    """`value` if it can be a signature made with `num_perm` permutations: a list of exactly
    that many integers in [0, MAX_HASH]; ValueError otherwise. A stored signature (memo,
    checkpoint) is checked with this before use: one of the wrong length would shift every
    later signature in stage 3's flat array."""
    if not isinstance(value, list) or len(value) != num_perm:
        size = len(value) if isinstance(value, list) else type(value).__name__
        raise ValueError(f"not a signature of {num_perm} values ({size})")
    for item in value:
        if type(item) is not int or not 0 <= item <= MAX_HASH:
            raise ValueError(f"a signature value out of range: {item!r:.40}")
    return value


def signatures(texts: Sequence[str], num_perm: int, shingle_size: int) -> list[Signature]:
    """Signatures of several texts: one call per chunk sent to a worker process."""
    return [signature(text, num_perm, shingle_size) for text in texts]


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity: the share of permutations whose minimums agree."""
    if len(a) != len(b):
        raise ValueError("signatures of different lengths")
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def near_duplicate_groups(
    signatures: array[int], num_perm: int, threshold: float
) -> list[list[int]]:
    """Groups of item numbers whose estimated similarity is at or above `threshold`.

    `signatures` holds every item's signature one after another (item i at
    `[i * num_perm, (i + 1) * num_perm)`) in one flat `array("I")`: 512 bytes an item at
    128 permutations, where lists of Python ints would take about 4.5 KB. That is what keeps
    grouping 10,000 documents at a few MB.

    Candidate pairs come from locality-sensitive hashing (items that agree on a whole band
    of their signatures), one band at a time so that only one band's buckets are in memory;
    the work grows with the number of candidates, not with the square of the number of
    items. Each candidate pair is checked against the threshold; a group is a connected
    component of the pairs that pass (A~B and B~C put A, B, C together). Identical texts have
    identical signatures, so they are always grouped. Each group is sorted, the groups are
    sorted, and items in no group are left out.
    """
    count = len(signatures) // num_perm
    parent = array("l", range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def row(i: int) -> array[int]:
        return signatures[i * num_perm : (i + 1) * num_perm]

    for start in range(0, num_perm, LSH_ROWS_PER_BAND):
        end = min(start + LSH_ROWS_PER_BAND, num_perm)
        buckets: dict[bytes, list[int]] = defaultdict(list)
        for i in range(count):
            band = signatures[i * num_perm + start : i * num_perm + end].tobytes()
            buckets[band].append(i)
        for members in buckets.values():
            for i, j in combinations(members, 2):
                if root(i) != root(j) and similarity(row(i), row(j)) >= threshold:
                    parent[root(i)] = root(j)

    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(count):
        groups[root(i)].append(i)
    return sorted(g for g in groups.values() if len(g) > 1)

"""The CPU-bound function of the minimal sample: replace it with your own.

Pure Python on purpose: it holds the GIL, so threads cannot run two of these at once and
the worker sends them to its process pool (`runtime/pool.py`). It must be a module-level
function of picklable arguments, deterministic (the same result in every process and on
every run), since results are memoized by content. Every pool process imports this module
before its first call: it imports the standard library only (the activity turns the plain
result into the checked `models.PageStats`), so a new pool process starts in a few
hundredths of a second instead of paying for pydantic.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple

WORD = re.compile(r"[a-z0-9']+")
TOP_WORDS = 5
FNV_OFFSET, FNV_PRIME, MASK = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


class TextStats(NamedTuple):
    """What `page_stats` returns: the fields of `models.PageStats`, unchecked."""

    words: int
    unique: int
    top: list[tuple[str, int]]
    fingerprint: str


def page_stats(text: str, rounds: int) -> TextStats:
    """Words, distinct words and the most common ones, plus a fingerprint that costs `rounds`
    passes of a 64-bit FNV-1a hash over the words: the stand-in for real CPU work."""
    words = WORD.findall(text.lower())
    counts = Counter(words)
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_WORDS]
    value = FNV_OFFSET
    for _ in range(rounds):
        for word in words:
            for char in word:
                value = ((value ^ ord(char)) * FNV_PRIME) & MASK
    return TextStats(len(words), len(counts), top, f"{value:016x}")

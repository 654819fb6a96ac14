"""The suite's own schedule: under xdist each worker starts with its share of the slow tests.

`make test` runs on 4 xdist workers (2 cores); the longest test used to start last on a
worker that had already run the others, and ended the run alone, 15 s after the rest.
"""

from __future__ import annotations

from .conftest import xdist_order

SECONDS = {"drill": 16.0, "kill_sqlite": 7.0, "kill_redis": 7.0, "demo": 6.0, "trace": 3.0}


def seconds(name: str) -> float:
    return SECONDS.get(name, 0.0)


def shares(order: list[str], workers: int) -> list[list[str]]:
    """What `--dist worksteal` hands each worker at the start: the next len(left) // (workers
    left) tests of the list (pytest-xdist's WorkStealingScheduling.check_schedule)."""
    cut, rest = [], list(order)
    for j in range(workers):
        size = len(rest) // (workers - j)
        cut.append(rest[:size])
        rest = rest[size:]
    return cut


def test_each_worker_starts_with_its_longest_share_of_the_slow_tests() -> None:
    fast = [f"t{i}" for i in range(40)]
    slow_late = ["kill_sqlite", "drill", "kill_redis"]  # as the files put them: the drill last
    items = [*fast[:10], "trace", "demo", *fast[10:30], *slow_late, *fast[30:]]
    order = xdist_order(items, 3, seconds)
    assert sorted(order) == sorted(items)  # every test, once
    heads = [[name for name in share if seconds(name)] for share in shares(order, 3)]
    # Longest first, each to the least loaded share: 16 | 7 + 6 = 13 | 7 + 3 = 10
    assert heads == [["drill"], ["kill_sqlite", "demo"], ["kill_redis", "trace"]]
    for share, head in zip(shares(order, 3), heads, strict=True):
        assert share[: len(head)] == head  # at the head: stealing takes from the end
    assert [name for name in order if not seconds(name)] == fast  # the rest keep their order


def test_more_slow_tests_than_a_share_holds_still_runs_every_test() -> None:
    items = ["drill", "demo", "trace", "a", "kill_sqlite", "kill_redis"]
    order = xdist_order(items, 4, seconds)
    assert sorted(order) == sorted(items)
    assert order[0] == "drill"


def test_without_slow_tests_the_order_is_unchanged() -> None:
    items = [f"t{i}" for i in range(7)]
    assert xdist_order(items, 3, seconds) == items

"""The test helpers themselves: combinations, pairwise coverage, literal answers."""

from __future__ import annotations

import itertools

import pytest
from bakery import (
    CHOICES,
    MAX_FULL_COMBINATIONS,
    all_combinations,
    combinations,
    literal_answer,
    pairwise_combinations,
    unsupported_reason,
)

MANY = {
    "python_version": ["3.11", "3.12", "3.13"],
    "state_store": ["sqlite", "redis"],
    "deploy": ["none", "compose", "kubernetes"],
    "workshop": ["no", "yes"],
    "ci": ["none", "github", "gitlab"],
}


def test_small_option_sets_bake_every_combination() -> None:
    small = {key: MANY[key] for key in ("python_version", "state_store", "workshop")}
    assert len(all_combinations(small)) <= MAX_FULL_COMBINATIONS
    assert combinations(small) == all_combinations(small)


def test_template_options_bake_every_pair_of_values() -> None:
    """Every two options' values that the hook accepts meet in a bake; none is refused.

    Whatever the template's options are today.
    """
    chosen = combinations(CHOICES)
    covered = {(a, c[a], b, c[b]) for c in chosen for a, b in itertools.combinations(CHOICES, 2)}
    wanted = {
        (a, va, b, vb)
        for a, b in itertools.combinations(CHOICES, 2)
        for va in CHOICES[a]
        for vb in CHOICES[b]
        if unsupported_reason({a: va, b: vb}) is None
    }
    assert wanted <= covered
    assert all(unsupported_reason(combo) is None for combo in chosen)
    assert unsupported_reason({"sample": "minimal", "workshop": "yes"}) is not None


def test_large_option_sets_bake_pairwise() -> None:
    chosen = combinations(MANY)
    assert len(all_combinations(MANY)) == 108
    assert len(chosen) < 20
    covered = {(a, c[a], b, c[b]) for c in chosen for a, b in itertools.combinations(MANY, 2)}
    wanted = {
        (a, va, b, vb)
        for a, b in itertools.combinations(MANY, 2)
        for va in MANY[a]
        for vb in MANY[b]
    }
    assert wanted <= covered
    assert all(list(c) == list(MANY) for c in chosen)
    assert pairwise_combinations(MANY) == chosen  # deterministic


def test_literal_answer_refuses_endraw() -> None:
    assert literal_answer("{{ x }}") == "{% raw %}{{ x }}{% endraw %}"
    with pytest.raises(ValueError, match="endraw"):
        literal_answer("{% endraw %}")

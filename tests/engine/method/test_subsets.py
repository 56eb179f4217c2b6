"""The seeded subset split (docs/method.md §9): shuffle with random.Random(seed), interleave."""

from __future__ import annotations

import random

import pytest

from engine.errors import InvalidInputError
from engine.method.subsets import check_count, split_subsets


def _documented_split(num_samples: int, groups: int, seed: int) -> list[list[int]]:
    """The split as engine/method/subsets.py documents it, written out independently."""
    order = list(range(num_samples))
    random.Random(seed).shuffle(order)
    subsets = [[] for _ in range(groups)]
    for position, index in enumerate(order):
        subsets[position % groups].append(index)  # subset t takes every g-th index from t on
    return [sorted(s) for s in subsets]


@pytest.mark.parametrize(
    ("num_samples", "groups", "seed"), [(8, 2, 42), (10, 3, 1), (13, 4, 7), (20, 5, 0)]
)
def test_split_is_the_seeded_shuffle_interleaved(num_samples: int, groups: int, seed: int) -> None:
    assert split_subsets(num_samples, groups, seed) == _documented_split(num_samples, groups, seed)


def test_split_of_eight_in_two_with_the_default_seed_by_value() -> None:
    # random.Random(42).shuffle(list(range(8))) -> [3, 4, 6, 7, 2, 5, 0, 1]
    assert split_subsets(8, 2) == [[0, 2, 3, 6], [1, 4, 5, 7]]


def test_split_of_ten_in_three_by_value() -> None:
    # random.Random(1).shuffle(list(range(10))) -> [6, 8, 9, 7, 5, 3, 0, 4, 1, 2]
    assert split_subsets(10, 3, seed=1) == [[0, 2, 6, 7], [4, 5, 8], [1, 3, 9]]


def test_groups_are_clipped_so_that_each_holds_two_samples() -> None:
    assert split_subsets(7, 5, seed=3) == _documented_split(7, 3, 3)  # 7 // 2 = 3 groups
    assert split_subsets(4, 2, seed=3) == _documented_split(4, 2, 3)
    assert [len(s) for s in split_subsets(9, 4, seed=0)] == [3, 2, 2, 2]


@pytest.mark.parametrize(("num_samples", "groups"), [(10, 1), (10, 0), (3, 2), (2, 2), (0, 3)])
def test_one_group_when_not_split(num_samples: int, groups: int) -> None:
    assert split_subsets(num_samples, groups) == [list(range(num_samples))]


def test_check_count_errors_below_two_and_warns_below_five_once() -> None:
    warnings: list[str] = []
    with pytest.raises(InvalidInputError, match="only 1 of 3 samples"):
        check_count("line", 1, 3, warnings)
    check_count("line", 2, 2, warnings)
    assert len(warnings) == 1 and "only 2 samples" in warnings[0] and "below 5" in warnings[0]
    check_count("line", 4, 4, warnings)
    assert len(warnings) == 1  # once
    quiet: list[str] = []
    check_count("line", 5, 5, quiet)
    assert quiet == []


def test_check_count_messages_say_what_to_do() -> None:
    with pytest.raises(InvalidInputError) as error:
        check_count("line/", 1, 4, [])
    assert str(error.value) == (
        "line/: only 1 of 4 samples could be read; mutual scoring compares samples with each "
        "other and needs at least 2. Add samples or fix the files listed as skipped."
    )
    warnings: list[str] = []
    check_count("line/", 3, 3, warnings)
    assert warnings == [
        "only 3 samples: the interval average degenerates below 5 samples, so scores are "
        "unreliable; add more parts from the same line."
    ]

"""The interval average keeps the lowest X % of the N - 1 reference scores (docs/method.md §5).

The cases are chosen so that ``floor(X * R)`` and ``floor(X * (R + 1))`` differ: computing k from
the number of samples N instead of the number of references R = N - 1 changes every answer.
"""

from __future__ import annotations

import pytest
import torch

from engine.method import mutual_scoring
from engine.progress import run_to_completion


@pytest.mark.parametrize(
    ("x_percent", "references", "k"),
    [
        (30.0, 9, 2),  # 2.7 -> 2; from N = 10 it would be 3
        (30.0, 10, 3),  # 3.0 -> 3
        (50.0, 3, 1),  # 1.5 -> 1; from N = 4 it would be 2
        (50.0, 5, 2),  # 2.5 -> 2; from N = 6 it would be 3
        (20.0, 4, 1),  # 0.8 -> max(1, 0) = 1
        (10.0, 5, 1),  # 0.5 -> max(1, 0) = 1
        (100.0, 7, 7),  # all references
        (29.0, 100, 29),  # 0.29 * 100 = 28.999999999999996 in floats: still 29
        (30.0, 52, 15),  # 15.6 -> 15
    ],
)
def test_interval_count_by_hand(x_percent: float, references: int, k: int) -> None:
    assert mutual_scoring.interval_count(x_percent, references) == k


def test_interval_average_of_nine_references() -> None:
    # R = 9 references (N = 10 samples) with distances 1..9 in scrambled order
    row = torch.tensor([9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0])
    cumsum = mutual_scoring.sorted_cumsum(row.view(1, 1, 9))
    assert cumsum.view(-1).tolist() == [1.0, 3.0, 6.0, 10.0, 15.0, 21.0, 28.0, 36.0, 45.0]
    average = lambda x: mutual_scoring.interval_average(cumsum, x).item()  # noqa: E731
    assert average(30.0) == pytest.approx((1 + 2) / 2)  # k = floor(2.7) = 2, not 3
    assert average(50.0) == pytest.approx((1 + 2 + 3 + 4) / 4)  # k = floor(4.5) = 4, not 5
    assert average(100.0) == pytest.approx(5.0)
    assert average(5.0) == pytest.approx(1.0)  # k = max(1, 0)


def test_interval_average_works_on_the_last_axis_of_any_shape() -> None:
    distances = torch.tensor(
        [
            [[3.0, 1.0, 2.0, 6.0, 5.0], [0.5, 0.25, 0.75, 1.0, 2.0]],
            [[10.0, 20.0, 30.0, 40.0, 50.0], [4.0, 4.0, 1.0, 9.0, 1.0]],
        ]
    )
    cumsum = mutual_scoring.sorted_cumsum(distances)
    # R = 5, X = 50 -> k = 2 (from N = 6 it would be 3)
    expected = [[(1.0 + 2.0) / 2, (0.25 + 0.5) / 2], [(10.0 + 20.0) / 2, (1.0 + 1.0) / 2]]
    assert torch.allclose(mutual_scoring.interval_average(cumsum, 50.0), torch.tensor(expected))


def test_drop_self_removes_exactly_the_diagonal_references() -> None:
    # distances[i, m, j]: sample i, patch m, reference j; value 10 i + j + m / 10
    n, patches = 4, 2
    distances = torch.tensor(
        [[[10.0 * i + j + m / 10 for j in range(n)] for m in range(patches)] for i in range(n)]
    )
    kept = mutual_scoring.drop_self(distances)
    assert kept.shape == (n, patches, n - 1)
    for i in range(n):
        for m in range(patches):
            others = [10.0 * i + j + m / 10 for j in range(n) if j != i]
            assert kept[i, m].tolist() == pytest.approx(others)


def test_session_table_has_n_minus_1_references_per_patch() -> None:
    # 10 samples of one patch each, on the unit circle at angles 0.05 * i^2 (all below 2 pi)
    angles = torch.tensor([0.05 * i * i for i in range(10)], dtype=torch.float64)
    features = torch.stack([angles.cos(), angles.sin()], dim=-1).view(10, 1, 2)
    distances = mutual_scoring.drop_self(
        run_to_completion(mutual_scoring.patch_to_sample_distances(features, 1))
    )
    assert distances.shape == (10, 1, 9)
    # sample 0 (angle 0): references at 0.05, 0.2, 0.45, ... -> chord 2 sin(a / 2)
    nearest_two = [2 * torch.sin(torch.tensor(a / 2)).item() for a in (0.05, 0.2)]
    score = mutual_scoring.interval_average(mutual_scoring.sorted_cumsum(distances), 30.0)
    assert score[0, 0].item() == pytest.approx(sum(nearest_two) / 2, abs=1e-6)

"""SNAMD-2D against the formula of docs/method.md §3, evaluated by explicit loops in the test.

The toy grid is chosen so that the formula's details matter: neighbour differences are well
below 1 and differ from each other (so exp(-d) and exp(-d^2) disagree), token norms are small
(so the zero-padded border positions get weights that are not ~0), the grid is not square (so
rows and columns cannot be swapped) and the degrees give different pooled values (so keeping one
degree is not the mean over degrees).
"""

from __future__ import annotations

import math

import pytest
import torch

from engine.method.snamd import snamd_2d, snamd_3d, sw_pool_2d


def _toy_tokens() -> torch.Tensor:
    """(2, 4, 5, 2) tokens: two samples on a 4 x 5 grid, two channels, norms about 0.1-0.8."""
    tokens = torch.empty(2, 4, 5, 2, dtype=torch.float64)
    for n in range(2):
        for i in range(4):
            for j in range(5):
                tokens[n, i, j, 0] = 0.4 * math.sin(i + 2 * j + n)
                tokens[n, i, j, 1] = 0.3 * math.cos(2 * i - j) + 0.2 * n
    return tokens


def _pooled_by_hand(tokens: torch.Tensor, r: int) -> torch.Tensor:
    """sum_q w_q f_q / sum_q w_q over the centred r x r window, w_q = exp(-||f_q - f_m||)."""
    n_samples, height, width, channels = tokens.shape
    out = torch.zeros_like(tokens)
    half = r // 2
    for n in range(n_samples):
        for i in range(height):
            for j in range(width):
                centre = [float(v) for v in tokens[n, i, j]]
                numerator = [0.0] * channels
                denominator = 0.0
                for di in range(-half, half + 1):
                    for dj in range(-half, half + 1):
                        inside = 0 <= i + di < height and 0 <= j + dj < width
                        # zero padding: a position outside the grid is the zero vector
                        q = [float(v) for v in tokens[n, i + di, j + dj]] if inside else [0.0] * 2
                        distance = math.sqrt(
                            sum((a - b) ** 2 for a, b in zip(q, centre, strict=True))
                        )
                        weight = math.exp(-distance)
                        denominator += weight
                        numerator = [s + weight * v for s, v in zip(numerator, q, strict=True)]
                out[n, i, j] = torch.tensor([s / denominator for s in numerator])
    return out


def test_toy_grid_has_the_properties_the_formula_tests_need() -> None:
    tokens = _toy_tokens()
    right = (tokens[:, :, 1:] - tokens[:, :, :-1]).norm(dim=-1)
    down = (tokens[:, 1:] - tokens[:, :-1]).norm(dim=-1)
    steps = torch.cat([right.flatten(), down.flatten()])
    assert 0.05 < steps.min() and steps.max() < 0.95  # exp(-d) and exp(-d^2) differ clearly
    norms = tokens.norm(dim=-1)
    assert norms.max() < 0.9  # padded positions weigh exp(-||f_m||) > 0.4


@pytest.mark.parametrize("r", [3, 5])
def test_swpooling_equals_the_normalised_weighted_average(r: int) -> None:
    tokens = _toy_tokens()
    pooled = sw_pool_2d(tokens, (1, 3, 5))
    degree = (1, 3, 5).index(r)
    assert torch.allclose(pooled[degree], _pooled_by_hand(tokens, r), atol=1e-12)


def test_swpooling_corner_value_by_hand() -> None:
    # a 2 x 2 grid of scalars: the corner (0, 0) value 0.3 with in-grid neighbours 0.5, 0.1, 0.7
    # and 5 zero-padded positions in its 3 x 3 window
    tokens = torch.tensor([[0.3, 0.5], [0.1, 0.7]], dtype=torch.float64).view(1, 2, 2, 1)
    weights = {0.3: 1.0, 0.5: math.exp(-0.2), 0.1: math.exp(-0.2), 0.7: math.exp(-0.4)}
    pad_weight = math.exp(-0.3)
    numerator = sum(w * v for v, w in weights.items())
    denominator = sum(weights.values()) + 5 * pad_weight
    pooled = sw_pool_2d(tokens, (1, 3))
    assert pooled[1, 0, 0, 0, 0].item() == pytest.approx(numerator / denominator, abs=1e-12)
    assert pooled[0, 0, 0, 0, 0].item() == 0.3  # r = 1 is the token itself


def test_swpooling_degree_one_is_the_token_itself() -> None:
    tokens = _toy_tokens()
    assert torch.equal(sw_pool_2d(tokens, (1, 3))[0], tokens)


def test_snamd_2d_is_the_normalised_mean_over_degrees() -> None:
    tokens = _toy_tokens()
    by_degree = [tokens, _pooled_by_hand(tokens, 3), _pooled_by_hand(tokens, 5)]
    mean = sum(by_degree) / 3
    expected = mean / mean.norm(dim=-1, keepdim=True)
    features = snamd_2d(tokens, (1, 3, 5))
    assert features.shape == (2, 20, 2)
    assert torch.allclose(features, expected.reshape(2, 20, 2), atol=1e-12)
    # the degrees give different directions, so the largest degree alone is not the answer
    largest = by_degree[2] / by_degree[2].norm(dim=-1, keepdim=True)
    assert not torch.allclose(features, largest.reshape(2, 20, 2), atol=1e-3)


def test_snamd_2d_with_a_subset_of_degrees() -> None:
    tokens = _toy_tokens()
    mean = (tokens + _pooled_by_hand(tokens, 5)) / 2
    expected = (mean / mean.norm(dim=-1, keepdim=True)).reshape(2, 20, 2)
    assert torch.allclose(snamd_2d(tokens, (1, 5)), expected, atol=1e-12)


@pytest.mark.parametrize("bad", [(), (2,), (1, 4), (0,), (-1,)])
def test_even_or_empty_degrees_are_refused(bad: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="odd"):
        sw_pool_2d(torch.zeros(1, 3, 3, 1), bad)


# -- SNAMD-3D (spec B §4.2) ----------------------------------------------------------------------

# four groups on a line at x = 0, 10, 1, 3: nearest-first neighbour order is not the index order
CENTRES_3D = torch.tensor([[0.0, 0, 0], [10.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]])
NEAREST_3D = [[0, 2, 3, 1], [1, 3, 2, 0], [2, 0, 3, 1], [3, 2, 0, 1]]
# raw tokens of different norms (SNAMD-3D L2-normalises them first)
TOKENS_3D = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0], [1.0, 1.0]])


def _snamd_3d_by_hand(r_list: tuple[int, ...], curved: set[int]) -> list[list[float]]:
    units = [[v / math.hypot(*t) for v in t] for t in TOKENS_3D.tolist()]
    out = []
    for g in range(4):
        if g in curved:  # high curvature: the unit token itself
            out.append(units[g])
            continue
        pooled = []  # [degree r pooled over the r nearest groups, self included] concatenated
        for r in r_list:
            members = NEAREST_3D[g][: min(r, 4)]
            weights = [math.exp(-math.dist(units[j], units[g])) for j in members]
            pooled += [
                sum(w * units[j][c] for w, j in zip(weights, members, strict=True)) / sum(weights)
                for c in range(2)
            ]
        # adaptive_avg_pool1d to 2 channels: the mean of each half of the concatenation
        half = len(pooled) // 2
        out.append([sum(pooled[:half]) / half, sum(pooled[half:]) / half])
    return out


def test_snamd_3d_pools_the_nearest_groups_of_unit_tokens_by_hand() -> None:
    flat = torch.zeros(4)
    out = snamd_3d(TOKENS_3D, CENTRES_3D, flat, c_thr=0.5, r_list=(1, 3))
    assert out.tolist() == [
        pytest.approx(row, abs=1e-6) for row in _snamd_3d_by_hand((1, 3), set())
    ]


def test_snamd_3d_default_degrees_clip_to_the_group_count() -> None:
    # r = 5 with only 4 groups uses all 4; 6 pooled channels -> 2 (means of channel triplets)
    curvatures = torch.tensor([0.0, 0.2, 0.0, 0.01])
    out = snamd_3d(TOKENS_3D, CENTRES_3D, curvatures, c_thr=0.01)
    expected = _snamd_3d_by_hand((1, 3, 5), curved={1, 3})  # curvature >= c_thr keeps the token
    assert out.tolist() == [pytest.approx(row, abs=1e-6) for row in expected]


@pytest.mark.parametrize("bad", [(), (0,), (0, 3)])
def test_snamd_3d_refuses_degrees_below_one(bad: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="degrees r must be >= 1"):
        snamd_3d(TOKENS_3D, CENTRES_3D, torch.zeros(4), c_thr=0.5, r_list=bad)

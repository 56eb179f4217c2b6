"""Anomaly maps (spec B §6): upsampling, 3-NN interpolation, Gaussian blur, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from engine.method.maps import (
    gaussian_blur,
    interpolation_weights,
    points_to_map,
    upsample_maps,
)


def test_default_is_the_three_nearest_centres() -> None:
    centres = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0], [-1.5, 0, 0], [9.0, 0, 0]])
    points = torch.tensor([[0.5, 0.0, 0.0], [2.0, 0.0, 0.0]])
    indices, weights = interpolation_weights(points, centres)
    # point 0.5: centres 0 and 1 (d^2 = .25), then -1.5 (d^2 = 4); point 2: 1 and 3 (1), 0 (4)
    assert indices.shape == (2, 3)
    assert sorted(indices[0].tolist()) == [0, 1, 3] and sorted(indices[1].tolist()) == [0, 1, 2]
    inverse = {0: [4.0, 4.0, 0.25], 1: [1.0, 1.0, 0.25]}
    for row in range(2):
        by_centre = dict(zip(indices[row].tolist(), weights[row].tolist(), strict=True))
        raw = inverse[row]
        expected = [v / sum(raw) for v in raw]
        nearest_two = sorted(by_centre.values())[1:]
        assert nearest_two == pytest.approx(expected[:2], rel=1e-5)
        assert min(by_centre.values()) == pytest.approx(expected[2], rel=1e-5)
        assert sum(by_centre.values()) == pytest.approx(1.0, abs=1e-6)


def test_fewer_centres_than_neighbours_uses_them_all() -> None:
    centres = torch.tensor([[0.0, 0, 0], [1.0, 0, 0]])
    indices, weights = interpolation_weights(torch.tensor([[0.25, 0.0, 0.0]]), centres)
    assert indices.tolist() == [[0, 1]]
    raw = [1 / 0.0625, 1 / 0.5625]
    assert weights[0].tolist() == pytest.approx([v / sum(raw) for v in raw], rel=1e-5)


def test_chunked_points_are_all_interpolated_once() -> None:
    # more points than one 16384-point block: every point gets its own nearest centres
    count = 16384 + 7
    x = torch.arange(count, dtype=torch.float32) / count * 4.0
    points = torch.stack([x, torch.zeros(count), torch.zeros(count)], dim=1)
    centres = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0], [4.0, 0, 0]])
    indices, weights = interpolation_weights(points, centres)
    assert indices.shape == (count, 3) and weights.shape == (count, 3)
    nearest = torch.cdist(points, centres).argmin(dim=1)
    assert torch.equal(indices[:, 0], nearest)  # sorted nearest first
    assert torch.allclose(weights.sum(dim=1), torch.ones(count), atol=1e-5)
    # the last point (x just below 4) is nearest to centre 4, then 3, then 2
    assert indices[-1].tolist() == [4, 3, 2]


def test_upsample_to_height_and_width() -> None:
    grid = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    resized = upsample_maps(grid, (5, 7))
    assert resized.shape == (1, 5, 7)
    # align_corners=True: the corners are the grid corners, the middle row is a mean of rows
    assert resized[0, [0, 0, -1, -1], [0, -1, 0, -1]].tolist() == [1.0, 3.0, 4.0, 6.0]
    assert resized[0, 2, 0].item() == pytest.approx(2.5) and resized[0, 0, 3].item() == 2.0


def test_upsampled_maps_are_float32() -> None:
    up = upsample_maps(torch.ones(2, 3, 3, dtype=torch.float64), 5)
    assert up.shape == (2, 5, 5) and up.dtype == torch.float32


def _kernel(sigma: float, radius: int) -> list[float]:
    raw = [math.exp(-0.5 * (d / sigma) ** 2) for d in range(-radius, radius + 1)]
    return [v / sum(raw) for v in raw]


@pytest.mark.parametrize(("sigma", "radius"), [(1.0, 4), (0.25, 1), (1.6, 6)])
def test_blur_kernel_radius_is_four_sigma_rounded(sigma: float, radius: int) -> None:
    # radius = max(1, round(4 sigma)); the blurred impulse is the outer product of the kernel
    impulse = torch.zeros(1, 21, 21, dtype=torch.float64)
    impulse[0, 10, 10] = 1.0
    blurred = gaussian_blur(impulse, sigma)
    assert blurred.dtype == torch.float64
    support = (blurred[0] != 0).nonzero()
    assert support.min().item() == 10 - radius and support.max().item() == 10 + radius
    kernel = _kernel(sigma, radius)
    assert blurred[0, 10, 10].item() == pytest.approx(kernel[radius] ** 2, rel=1e-9)
    assert blurred[0, 10, 11].item() == pytest.approx(kernel[radius] * kernel[radius + 1], rel=1e-9)


def test_blur_with_sigma_zero_is_the_identity() -> None:
    maps = torch.rand(2, 5, 5)
    assert gaussian_blur(maps, 0.0) is maps


def test_points_to_map_keeps_the_score_precision() -> None:
    scores = torch.tensor([0.1, 0.7], dtype=torch.float64)
    indices = torch.tensor([[0, 1], [1, 0]])
    weights = torch.tensor([[0.75, 0.25], [1.0, 0.0]], dtype=torch.float64)
    heat, point_scores = points_to_map(scores, indices, weights, torch.tensor([3, 4]), (2, 3))
    assert heat.dtype == torch.float64
    assert point_scores.tolist() == pytest.approx([0.75 * 0.1 + 0.25 * 0.7, 0.7], abs=1e-15)
    assert heat.tolist() == [[0.0, 0.0, 0.0], [0.75 * 0.1 + 0.25 * 0.7, 0.7, 0.0]]

"""Unit tests of the method stages with hand-checkable values."""

from __future__ import annotations

import math

import pytest
import torch

from engine.method import mutual_scoring
from engine.method.maps import upsample_maps
from engine.method.rscon import propagate, rscon, salient_features
from engine.method.snamd import snamd_2d, sw_pool_2d
from engine.method.subsets import split_subsets
from engine.progress import run_to_completion


def test_swpooling_toy_grid_matches_hand_computation() -> None:
    tokens = torch.zeros(1, 3, 3, 1)
    tokens[0, 1, 1, 0] = 1.0  # one bright patch in the middle of a dark 3x3 grid
    pooled = sw_pool_2d(tokens, (1, 3))
    e = math.exp(-1.0)
    assert torch.equal(pooled[0], tokens)  # r = 1 is the token itself
    # centre: neighbours differ by 1 -> weight e^-1 each, but contribute f = 0
    assert pooled[1, 0, 1, 1, 0].item() == pytest.approx(1.0 / (1.0 + 8.0 * e))
    # corner: 5 zero-padded + 2 in-grid zero neighbours (weight 1), the bright one (weight e^-1)
    assert pooled[1, 0, 0, 0, 0].item() == pytest.approx(e / (8.0 + e))


def test_swpooling_keeps_a_constant_field() -> None:
    tokens = torch.full((2, 5, 5, 3), 0.5)
    tokens[1] = 2.0
    pooled = sw_pool_2d(tokens, (1, 3, 5))
    # the centre's 5x5 window holds only identical tokens; border windows include padding
    assert torch.allclose(pooled[:, :, 2, 2], tokens[:, 2, 2].expand(3, 2, 3))
    assert (pooled[2, :, 0, 0] < tokens[:, 0, 0]).all()


def test_snamd_is_unit_norm_and_row_major() -> None:
    tokens = torch.randn(2, 4, 5, 8)
    features = snamd_2d(tokens)
    assert features.shape == (2, 20, 8)
    assert torch.allclose(features.norm(dim=-1), torch.ones(2, 20), atol=1e-6)


def _angles_to_features(angles: list[list[float]]) -> torch.Tensor:
    radians = torch.tensor(angles, dtype=torch.float64)
    return torch.stack([radians.cos(), radians.sin()], dim=-1).float()


def test_patch_to_sample_distance_is_the_nearest_chord() -> None:
    # three samples with two unit-vector patches each; distance = 2 sin(delta / 2)
    features = _angles_to_features([[0.0, 1.0], [0.1, 2.0], [1.5, 3.0]])
    distances = mutual_scoring.drop_self(
        run_to_completion(mutual_scoring.patch_to_sample_distances(features, 1))
    )
    chord = lambda d: 2 * math.sin(abs(d) / 2)  # noqa: E731
    assert distances.shape == (3, 2, 2)
    assert distances[0, 0, 0].item() == pytest.approx(chord(0.1), abs=1e-5)  # 0.0 vs 0.1
    assert distances[0, 1, 1].item() == pytest.approx(chord(0.5), abs=1e-5)  # 1.0 vs 1.5
    assert distances[2, 1, 1].item() == pytest.approx(chord(1.0), abs=1e-5)  # 3.0 vs 2.0


@pytest.mark.parametrize("chunk_mib", [1, 64])
def test_tiled_distances_equal_brute_force(chunk_mib: int) -> None:
    torch.manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(9, 300, 16), dim=-1)
    tiled = run_to_completion(mutual_scoring.patch_to_sample_distances(features, chunk_mib))
    exact = torch.cdist(features.double().flatten(0, 1), features.double().flatten(0, 1))
    exact = exact.view(9, 300, 9, 300).amin(-1)
    assert mutual_scoring.tile_size(300, chunk_mib, 9) < 9 or chunk_mib == 64
    assert torch.allclose(
        mutual_scoring.drop_self(tiled).double(), mutual_scoring.drop_self(exact), atol=1e-5
    )


def test_interval_average_on_known_lists() -> None:
    cumsum = mutual_scoring.sorted_cumsum(torch.tensor([[[5.0, 1.0, 3.0, 2.0, 4.0]]]))
    assert mutual_scoring.interval_average(cumsum, 40.0).item() == pytest.approx(1.5)  # k = 2
    assert mutual_scoring.interval_average(cumsum, 30.0).item() == pytest.approx(
        1.0
    )  # k = floor(1.5)
    assert mutual_scoring.interval_average(cumsum, 100.0).item() == pytest.approx(3.0)
    assert mutual_scoring.interval_average(cumsum, 1.0).item() == pytest.approx(1.0)  # k >= 1
    assert mutual_scoring.interval_count(30.0, 52) == 15


def test_rscon_on_a_four_sample_graph() -> None:
    salient = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])
    scores = torch.tensor([0.0, 1.0, 2.0, 4.0])
    result = rscon(scores, salient, window=2)
    # s = [0, .25, .5, 1]; rows keep self and their most similar other sample
    expected = [
        0.5 * (0.0 + (0.8 * 0.25) / 1.8),
        0.5 * (0.25 + (0.25 + 0.96 * 1.0) / 1.96),
        0.5 * (0.5 + (0.5 + 0.8 * 1.0) / 1.8),
        0.5 * (1.0 + (1.0 + 0.96 * 0.25) / 1.96),
    ]
    assert result.tolist() == pytest.approx(expected, abs=1e-6)


def test_rscon_window_one_is_the_identity_and_constant_scores_are_zero() -> None:
    salient = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)
    scores = torch.tensor([0.0, 2.0, 1.0, 4.0, 3.0])
    assert torch.allclose(rscon(scores, salient, window=1), scores / 4.0)
    assert torch.equal(rscon(torch.ones(5), salient), torch.zeros(5))


def test_propagate_keeps_own_score_when_weights_vanish() -> None:
    similarity = torch.tensor([[0.0, -1.0], [-1.0, 0.0]])
    assert propagate(torch.tensor([0.3, 0.7]), similarity, 2).tolist() == pytest.approx([0.3, 0.7])


def test_salient_feature_is_the_top_patch() -> None:
    features = torch.arange(12.0).view(2, 3, 2)
    chosen = salient_features(features, torch.tensor([[0.1, 0.9, 0.2], [0.5, 0.1, 0.0]]))
    assert chosen.tolist() == [[2.0, 3.0], [6.0, 7.0]]


def test_upsampled_map_max_equals_grid_max() -> None:
    grid = torch.rand(3, 7, 7)
    up = upsample_maps(grid, 56)
    assert up.shape == (3, 56, 56)
    # 7 -> 61 puts every grid point on an output pixel, so the maxima coincide
    assert torch.allclose(upsample_maps(grid, 61).flatten(1).amax(1), grid.flatten(1).amax(1))
    assert torch.allclose(up[:, 0, 0], grid[:, 0, 0])  # align_corners=True keeps the corners


def test_subsets_partition_and_are_seeded() -> None:
    groups = split_subsets(10, 3, seed=1)
    assert sorted(i for g in groups for i in g) == list(range(10))
    assert [len(g) for g in groups] == [4, 3, 3]
    assert groups == split_subsets(10, 3, seed=1)
    assert groups != split_subsets(10, 3, seed=2)
    assert split_subsets(10, 1) == [list(range(10))]
    assert len(split_subsets(5, 4)) == 2  # every subset keeps at least 2 samples

"""point_groups' contract by hand: messages of bad input, boundaries, defaults, scale invariance.

Written against the survivors of a mutation run (bench/mutation.sh point_groups).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch

from engine.errors import InvalidInputError
from engine.method.point_groups import (
    curvature,
    farthest_point_sample,
    ipg_groups,
    knn,
    normalize_unit_ball,
    prepare_groups,
    regroup,
)


def _blob(n: int, seed: int = 0) -> torch.Tensor:
    """A Gaussian blob in the unit ball: every group is curved (curvature ~ 1/3)."""
    generator = torch.Generator().manual_seed(seed)
    return normalize_unit_ball(torch.randn(n, 3, generator=generator))[0]


# -- input checks --------------------------------------------------------------------------------


def test_points_must_be_a_float_p_by_3_tensor() -> None:
    with pytest.raises(
        InvalidInputError,
        match=r"^points must be a \(P, 3\) tensor, found shape \(4, 2\)$",
    ):
        normalize_unit_ball(torch.zeros(4, 2))
    with pytest.raises(
        InvalidInputError,
        match=r"^points must be a \(P, 3\) tensor, found shape \(3,\)$",
    ):
        normalize_unit_ball(torch.zeros(3))
    with pytest.raises(
        InvalidInputError,
        match="^points must be a \\(P, 3\\) tensor, found <class 'list'>$",
    ):
        normalize_unit_ball([[0.0, 0.0, 0.0]])
    with pytest.raises(
        InvalidInputError,
        match="^points must be floating point, found dtype torch.int64$",
    ):
        normalize_unit_ball(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(
        InvalidInputError,
        match=r"^query must be a \(P, 3\) tensor, found shape \(2, 2\)$",
    ):
        knn(torch.zeros(2, 2), torch.zeros(4, 3), 1)


def test_the_3d_branch_works_in_float32() -> None:
    out, _, _ = normalize_unit_ball(torch.tensor([[0.0, 0, 0], [2.0, 0, 0]], dtype=torch.float64))
    assert out.dtype == torch.float32 and out.tolist() == [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]


def test_index_checks_name_the_argument() -> None:
    points = torch.zeros(4, 3)
    with pytest.raises(
        InvalidInputError,
        match=r"^neighbour_idx must be an int64 tensor with 2 dims, found torch.int64 \(4,\)$",
    ):
        curvature(points, torch.arange(4))
    with pytest.raises(
        InvalidInputError,
        match=r"^neighbour_idx must be an int64 tensor with 2 dims, found torch.int32 \(1, 2\)$",
    ):
        curvature(points, torch.zeros(1, 2, dtype=torch.int32))
    with pytest.raises(
        InvalidInputError,
        match="^neighbour_idx must be an int64 tensor with 2 dims, found <class 'list'>$",
    ):
        curvature(points, [[0, 1]])
    with pytest.raises(
        InvalidInputError,
        match="^neighbour_idx must index into 4 points, found out of range$",
    ):
        curvature(points, torch.tensor([[0, 4]]))
    search = torch.tensor([[0, 1, 2], [1, 0, 2]])
    sizes = {"group_size": 3, "k_iter": 1}
    with pytest.raises(
        InvalidInputError,
        match=r"^center_idx must be an int64 tensor with 1 dims, found torch.int32 \(2,\)$",
    ):
        ipg_groups(points, torch.tensor([0, 1], dtype=torch.int32), search, torch.ones(2), **sizes)
    with pytest.raises(
        InvalidInputError,
        match=r"^search_idx must be an int64 tensor with 2 dims, found torch.int64 \(3,\)$",
    ):
        ipg_groups(points, torch.tensor([0, 1]), search[0], torch.ones(2), **sizes)
    with pytest.raises(
        InvalidInputError,
        match=r"^center_idx, curvatures must be \(2,\) like search_idx, found \(3,\) and \(2,\)$",
    ):
        ipg_groups(points, torch.tensor([0, 1, 2]), search, torch.ones(2), **sizes)


def test_size_checks_say_what_was_found() -> None:
    points = _blob(20)
    with pytest.raises(InvalidInputError, match="^chunk must be >= 1, found 0$"):
        knn(points, points, 2, chunk=0)
    with pytest.raises(InvalidInputError, match="^group_size must be >= 1, found 0$"):
        prepare_groups(points, 4, 0)
    basis = prepare_groups(points, 4, 5)
    with pytest.raises(InvalidInputError, match="^k_iter must be >= 1, found 0$"):
        regroup(basis, points, k_iter=0)
    with pytest.raises(InvalidInputError, match="^num_samples must be >= 1, found 0$"):
        farthest_point_sample(points, 0)


# -- boundaries ----------------------------------------------------------------------------------


def test_smallest_valid_sizes_are_accepted() -> None:
    points = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0.0, 2.0, 0]])
    assert farthest_point_sample(points, 1).tolist() == [0]
    basis = prepare_groups(points, 2, 1)  # groups of one point: flat by definition
    assert basis.group_size == 1 and basis.curvatures.tolist() == [0.0, 0.0]
    assert regroup(basis, points, k_iter=1).groups.tolist() == [[0], [2]]


def test_curvature_without_neighbours_is_zero_per_group() -> None:
    points = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0.0, 2.0, 0]])
    assert curvature(points, torch.tensor([[0], [1], [2]])).tolist() == [0.0, 0.0, 0.0]


def test_small_clouds_are_scaled_up_into_the_unit_ball() -> None:
    out, centroid, scale = normalize_unit_ball(torch.tensor([[0.0, 0, 0], [0.1, 0, 0]]))
    assert scale.item() == pytest.approx(0.05)
    assert out[:, 0].tolist() == pytest.approx([-1.0, 1.0])


def test_curvature_of_a_cube_is_one_third_at_any_scale() -> None:
    # centre + the 8 cube corners: covariance s^2 I, so lambda_min / trace = 1/3 for any size s
    corners = [list(c) for c in itertools.product((-1.0, 1.0), repeat=3)]
    idx = torch.arange(9).view(1, 9)
    for size in (1.0, 1e-3):
        points = torch.tensor([[0.0, 0.0, 0.0]] + corners) * size + torch.tensor([0.05, -0.02, 0])
        assert curvature(points, idx).item() == pytest.approx(1 / 3, rel=1e-4)


def test_a_group_with_curvature_equal_to_the_threshold_is_grown() -> None:
    points = _blob(300, seed=1)
    basis = prepare_groups(points, 4, 32)
    args = (points, basis.center_idx, basis.search_idx)
    grown = ipg_groups(*args, torch.ones(4), group_size=32, k_iter=4, c_thr=0.5)
    plain = ipg_groups(*args, torch.zeros(4), group_size=32, k_iter=4, c_thr=0.5)
    assert not torch.equal(grown, plain)  # the premise: IPG changes these groups
    at_threshold = ipg_groups(*args, torch.full((4,), 0.5), group_size=32, k_iter=4, c_thr=0.5)
    assert torch.equal(at_threshold, grown)


# -- defaults ------------------------------------------------------------------------------------


def test_default_group_count_and_size_are_the_papers() -> None:
    points = _blob(1030, seed=2)
    basis = prepare_groups(points)
    assert basis.center_idx.shape == (1024,) and basis.group_size == 128
    assert basis.search_idx.shape == (1024, 256)


def test_default_k_iter_and_c_thr_are_the_papers() -> None:
    points = _blob(400, seed=3)
    basis = prepare_groups(points, 6, 128)
    curved = torch.full((6,), 0.01)  # exactly the default threshold: grown
    args = (points, basis.center_idx, basis.search_idx, curved)
    default = ipg_groups(*args)
    assert torch.equal(default, ipg_groups(*args, group_size=128, k_iter=80, c_thr=0.01))
    assert not torch.equal(default, ipg_groups(*args, group_size=128, k_iter=81, c_thr=0.01))
    flat_basis = replace(basis, curvatures=curved)
    assert torch.equal(regroup(flat_basis, points).groups, default)
    assert not torch.equal(regroup(flat_basis, points, k_iter=81).groups, default)


def test_regroup_passes_the_variant_on() -> None:
    points = _blob(400, seed=4)
    basis = prepare_groups(points, 6, 64)
    args = (points, basis.center_idx, basis.search_idx, torch.ones(6))
    reference = ipg_groups(*args, group_size=64, k_iter=8, variant="reference")
    assert not torch.equal(reference, ipg_groups(*args, group_size=64, k_iter=8))
    curved = replace(basis, curvatures=torch.ones(6))
    assert torch.equal(regroup(curved, points, k_iter=8, variant="reference").groups, reference)

"""CAE (spec B §5.2) on cases small enough to follow with pencil and paper."""

from __future__ import annotations

import pytest
import torch

from engine.method import cae


def test_rank_transfer_of_a_grid_by_hand() -> None:
    source = torch.tensor([40.0, 10.0, 30.0, 20.0])
    target = torch.tensor([[0.3, 0.1], [0.4, 0.2]])  # ranks [[2, 0], [3, 1]]
    out = cae.rank_transfer(source, target)
    assert out.shape == (2, 2)
    assert out.tolist() == [[30.0, 10.0], [40.0, 20.0]]  # sorted source [10, 20, 30, 40]


def test_rank_transfer_breaks_ties_by_position_and_keeps_source_dtype() -> None:
    source = torch.tensor([5.0, 7.0, 6.0], dtype=torch.float64)
    target = torch.tensor([1.0, 1.0, 0.0])  # stable order: position 2, then 0, then 1
    out = cae.rank_transfer(source, target)
    assert out.tolist() == [6.0, 7.0, 5.0] and out.dtype == torch.float64
    # a permutation of the source values, whatever the target
    assert sorted(cae.rank_transfer(source, torch.tensor([3.0, -1.0, 2.0])).tolist()) == [
        5.0,
        6.0,
        7.0,
    ]


def test_project_3d_to_2d_by_hand() -> None:
    b = torch.tensor([[1.0, 2.0], [3.0, 6.0], [10.0, 20.0]])
    a_p2i, has_groups = cae.project_3d_to_2d(b, torch.tensor([2, 2, 0]), 4)
    assert a_p2i.tolist() == [[10.0, 20.0], [0.0, 0.0], [2.0, 4.0], [0.0, 0.0]]
    assert has_groups.tolist() == [True, False, True, False]


def test_patch_of_pixel_by_hand() -> None:
    # a 6 x 6 pixel grid over a 3 x 2 patch grid: rows 0-1 / 2-3 / 4-5, columns 0-2 / 3-5
    pixels = torch.tensor([0, 5, 8, 15, 20, 35])  # (0,0) (0,5) (1,2) (2,3) (3,2) (5,5)
    assert cae.patch_of_pixel(pixels, (6, 6), (3, 2)).tolist() == [0, 1, 0, 3, 2, 5]
    # a 6-row, 4-column pixel grid: rows 0-1 / 2-3 / 4-5, columns 0-1 / 2-3
    pixels = torch.tensor([0, 3, 9, 14, 16, 23])  # (0,0) (0,3) (2,1) (3,2) (4,0) (5,3)
    assert cae.patch_of_pixel(pixels, (6, 4), (3, 2)).tolist() == [0, 1, 2, 3, 4, 5]


def test_enhance_on_two_patches_two_groups_three_references_by_hand() -> None:
    a = torch.tensor([[0.3, 0.5, 0.7], [0.2, 0.6, 0.5]], dtype=torch.float64)
    b = torch.tensor([[0.01, 0.02, 0.03], [0.05, 0.01, 0.09]], dtype=torch.float64)
    patch_of_group = torch.tensor([1, 1])  # both group centres in patch 1; patch 0 has none
    # A_P2I = [0, mean(B)] = [[0, 0, 0], [.03, .015, .06]]; B_I2P = [A[1], A[1]]
    # lambda2: std A = [.2, .20817], ranked by std A_P2I = [0, .0229] -> [.8, .79183]
    # A~[1] = A[1]'s values ordered like A_P2I[1] -> [.5, .2, .6]; E2 = lambda2 * max(A, A~)
    #   = [[.24, .4, .56], [.395915, .475098, .475098]]; A's values in E2's order:
    #   [[.2, .5, .7], [.3, .5, .6]] -> A' = (A + that) / 2
    # lambda3: std B = [.01, .04], the B_I2P rows tie -> stable order -> [.99, .96]
    # B~ = B's values in B_I2P's order = [[.01, .05, .02], [.01, .09, .03]]
    # E3 = lambda3 * max(B, B~) = [[.0099, .0495, .0297], [.048, .0864, .0864]]
    #   B's values in E3's order: [[.01, .03, .01], [.02, .05, .09]] -> B' = (B + that) / 2
    a_new, b_new = cae.enhance(a, b, patch_of_group)
    assert torch.allclose(a_new, torch.tensor([[0.25, 0.5, 0.7], [0.25, 0.55, 0.55]]).double())
    assert torch.allclose(b_new, torch.tensor([[0.01, 0.025, 0.02], [0.035, 0.03, 0.09]]).double())


def test_rank_transfer_names_both_sizes_when_they_differ() -> None:
    with pytest.raises(ValueError, match="equal sizes, got 4 and 6"):
        cae.rank_transfer(torch.ones(4), torch.ones(2, 3))

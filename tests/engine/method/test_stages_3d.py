"""Unit tests of the 3D and cross-modal stages: SNAMD-3D, general MSM, CAE, 3D maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.method import cae, mutual_scoring
from engine.method.maps import gaussian_blur, interpolation_weights, points_to_map
from engine.method.snamd import snamd_3d
from engine.progress import run_to_completion


def test_rank_transfer_keeps_target_order_with_source_values() -> None:
    out = cae.rank_transfer(torch.tensor([10.0, 30.0, 20.0]), torch.tensor([0.5, 0.1, 0.9]))
    assert out.tolist() == [20.0, 10.0, 30.0]
    with pytest.raises(ValueError, match="equal sizes"):
        cae.rank_transfer(torch.ones(2), torch.ones(3))


def _enhance_reference(a: np.ndarray, b: np.ndarray, patch: np.ndarray):
    """A plain loop transcription of docs/method.md §6, used to check the vectorised version."""

    def hm(src, tgt):
        out = np.empty(tgt.size)
        out[np.argsort(tgt.ravel(), kind="stable")] = np.sort(src.ravel(), kind="stable")
        return out.reshape(tgt.shape)

    p2i = np.zeros_like(a)
    for m in range(a.shape[0]):
        members = [n for n in range(b.shape[0]) if patch[n] == m]
        if members:
            p2i[m] = b[members].mean(axis=0)
    i2p = np.stack([a[patch[n]] for n in range(b.shape[0])])
    lam2 = 1 - hm(a.std(1, ddof=1), p2i.std(1, ddof=1))
    lam3 = 1 - hm(b.std(1, ddof=1), i2p.std(1, ddof=1))
    rows = p2i.sum(1) != 0
    a_t = np.zeros_like(a)
    a_t[rows] = hm(a[rows], p2i[rows])
    b_t = hm(b, i2p)
    e2 = lam2[:, None] * np.maximum(a, a_t)
    e3 = lam3[:, None] * np.maximum(b, b_t)
    return 0.5 * (a + hm(a, e2)), 0.5 * (b + hm(b, e3))


def test_cae_matches_a_loop_transcription_of_the_reference() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0.2, 0.8, (6, 5))
    b = rng.uniform(0.1, 0.5, (4, 5))
    patch = np.array([0, 0, 3, 5])  # patches 1, 2, 4 have no group centre
    a_new, b_new = cae.enhance(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(patch))
    a_ref, b_ref = _enhance_reference(a, b, patch)
    assert np.allclose(a_new.numpy(), a_ref) and np.allclose(b_new.numpy(), b_ref)
    # the enhanced values are averages of own values: the total is unchanged
    assert a_new.sum().item() == pytest.approx(a.sum())
    assert b_new.sum().item() == pytest.approx(b.sum())


def test_project_3d_to_2d_averages_groups_per_patch() -> None:
    b = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    projected, has = cae.project_3d_to_2d(b, torch.tensor([1, 1, 2]), 4)
    assert projected.tolist() == [[0, 0], [2, 3], [5, 6], [0, 0]]
    assert has.tolist() == [False, True, True, False]


def test_patch_of_pixel_maps_between_grids() -> None:
    # 224 grid -> 28 grid: pixel (row 17, col 223) lies in patch (2, 27)
    assert cae.patch_of_pixel(torch.tensor([17 * 224 + 223]), (224, 224), (28, 28)).item() == 83


def test_snamd_3d_on_a_hand_example() -> None:
    tokens = torch.eye(3)  # three unit tokens, mutually at distance sqrt(2)
    centers = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [5.0, 0, 0]])
    flat = torch.zeros(3)
    out = snamd_3d(tokens, centers, flat, c_thr=1.0, r_list=(1, 3))
    # degree 3 = all three groups with weights 1, e^-sqrt2, e^-sqrt2 around each token
    w = math.exp(-math.sqrt(2.0))
    f3_first = torch.tensor([1.0, w, w]) / (1 + 2 * w)
    f1_first = torch.tensor([1.0, 0.0, 0.0])
    pooled = torch.cat([f1_first, f3_first]).view(3, 2).mean(1)  # consecutive pairs 6 -> 3
    assert torch.allclose(out[0], pooled, atol=1e-6)
    # high curvature keeps the raw unit token
    curved = snamd_3d(tokens, centers, torch.tensor([0.5, 0.0, 0.0]), c_thr=0.1, r_list=(1, 3))
    assert torch.equal(curved[0], tokens[0]) and torch.allclose(curved[1], out[1])


def test_general_msm_equals_brute_force_for_unnormalised_features() -> None:
    torch.manual_seed(1)
    features = torch.randn(6, 300, 8) * torch.rand(6, 300, 1)  # norms vary, as 3D features do
    tiled = run_to_completion(
        mutual_scoring.patch_to_sample_distances(features, 1, unit_norm=False)
    )
    flat = features.double().flatten(0, 1)
    exact = torch.cdist(flat, flat).view(6, 300, 6, 300).amin(-1)
    assert mutual_scoring.tile_size(300, 1, 6) < 6
    assert torch.allclose(
        mutual_scoring.drop_self(tiled).double(), mutual_scoring.drop_self(exact), atol=1e-4
    )


def test_interpolation_uses_inverse_squared_distances() -> None:
    centers = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]])
    point = torch.tensor([[0.25, 0.0, 0.0]])
    indices, weights = interpolation_weights(point, centers, 2)
    assert indices.tolist() == [[0, 1]]
    raw = torch.tensor([1 / 0.0625, 1 / 0.5625])
    assert torch.allclose(weights[0], raw / raw.sum(), atol=1e-6)
    scores = torch.tensor([1.0, 2.0, 9.0])
    heat, point_scores = points_to_map(scores, indices, weights, torch.tensor([5]), (2, 4))
    expected = float((raw / raw.sum() * torch.tensor([1.0, 2.0])).sum())
    assert heat.view(-1)[5].item() == pytest.approx(expected)
    assert heat.sum().item() == pytest.approx(expected)
    assert point_scores.tolist() == pytest.approx([expected])


def test_gaussian_blur_preserves_mass_and_constants() -> None:
    impulse = torch.zeros(1, 41, 41)
    impulse[0, 20, 20] = 1.0
    blurred = gaussian_blur(impulse, 4.0)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert blurred[0, 20, 20].item() == pytest.approx(1 / (2 * math.pi * 16), rel=0.02)
    constant = torch.full((1, 9, 9), 3.0)
    assert torch.allclose(gaussian_blur(constant, 4.0), constant)

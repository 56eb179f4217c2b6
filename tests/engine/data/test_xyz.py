"""Organized XYZ maps: legacy-nearest resize, foreground, validation, flat cloud."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.data import (
    foreground_mask,
    mask_xyz,
    normalize_cloud,
    organized_to_cloud,
    resize_xyz,
    validate_xyz,
)
from engine.data.xyz import nearest_source_indices
from engine.errors import InvalidInputError


def ramp_xyz(height: int, width: int) -> np.ndarray:
    """Every pixel a distinct point (row, col, 1 + row*width + col) so copies can be traced."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([rows + 1, cols + 1, 1 + rows * width + cols], axis=-1)


@pytest.mark.parametrize(
    ("size_in", "size_out"),
    [(400, 224), (800, 224), (600, 224), (224, 224), (100, 200), (3, 7), (512, 224), (7, 3)],
)
def test_nearest_indices_match_torch(size_in: int, size_out: int) -> None:
    source = torch.arange(size_in, dtype=torch.float32).view(1, 1, size_in, 1)
    expected = F.interpolate(source, size=(size_out, 1), mode="nearest").view(-1).long().numpy()
    assert np.array_equal(nearest_source_indices(size_in, size_out), expected)


def test_resize_matches_torch_and_never_mixes_points() -> None:
    xyz = ramp_xyz(30, 40)
    xyz[5:9, 10:20] = 0.0  # a hole of missing points
    out = resize_xyz(xyz, (22, 17))
    tensor = torch.from_numpy(xyz).permute(2, 0, 1)[None]
    expected = F.interpolate(tensor, size=(22, 17), mode="nearest")[0].permute(1, 2, 0).numpy()
    assert out.dtype == np.float32 and out.shape == (22, 17, 3)
    assert np.array_equal(out, expected)
    # Every output point is an input point, so nothing between valid and missing appears.
    inputs = {tuple(p) for p in xyz.reshape(-1, 3).tolist()}
    assert all(tuple(p) in inputs for p in out.reshape(-1, 3).tolist())
    assert resize_xyz(xyz, 224).shape == (224, 224, 3)
    assert resize_xyz(foreground_mask(xyz), 11).dtype == bool
    with pytest.raises(InvalidInputError, match="positive"):
        resize_xyz(xyz, 0)


def test_foreground_needs_all_three_coordinates() -> None:
    xyz = np.array([[[1, 2, 3], [0, 2, 3]], [[1, 0, 3], [0, 0, 0]]], dtype=np.float32)
    assert foreground_mask(xyz).tolist() == [[True, False], [False, False]]
    kept = mask_xyz(xyz, np.array([[False, True], [True, True]]))
    assert kept[0, 0].tolist() == [0, 0, 0] and kept[1, 0].tolist() == [1, 0, 3]


def test_validate_xyz_errors_name_the_file() -> None:
    good = ramp_xyz(4, 5)
    assert validate_xyz(good, (4, 5, 3), "a.tiff") is good
    assert validate_xyz(good, None, None) is good
    with pytest.raises(InvalidInputError, match=r"a\.tiff.*\(H, W, 3\).*\(4, 5\)"):
        validate_xyz(good[..., 0], (4, 5), "a.tiff")
    with pytest.raises(InvalidInputError, match=r"a\.tiff.*\(4, 5\).*\(6, 5\).*resolution"):
        validate_xyz(good, (6, 5, 3), "a.tiff")
    half = good.copy()
    half[..., 0] = 0  # every point lacks X: none is a foreground point
    with pytest.raises(InvalidInputError, match=r"a\.tiff: every point .* missing"):
        validate_xyz(half, (4, 5), "a.tiff")


def test_organized_to_cloud_indices_are_row_major() -> None:
    xyz = ramp_xyz(3, 4)
    xyz[0, 1] = 0.0
    xyz[2, 3, 1] = 0.0  # one zero coordinate is enough to be missing
    points, index = organized_to_cloud(xyz)
    assert points.dtype == np.float32 and index.dtype == np.int64
    assert index.tolist() == [0, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert np.array_equal(points, xyz.reshape(-1, 3)[index])
    assert np.array_equal(points[:, 2], 1 + index.astype(np.float32))  # z encodes the pixel
    keep = np.zeros((3, 4), dtype=bool)
    keep[0, :2] = keep[1, 3] = True
    points, index = organized_to_cloud(xyz, keep)  # (0, 1) is missing: never in the cloud
    assert index.tolist() == [0, 7] and points.shape == (2, 3)
    with pytest.raises(InvalidInputError, match="resize the mask"):
        organized_to_cloud(xyz, np.ones((4, 4), dtype=bool))


def test_normalize_cloud_unit_ball() -> None:
    points = np.array([[1, 1, 1], [3, 1, 1], [1, 5, 1]], dtype=np.float32)
    normalized, centroid, scale = normalize_cloud(points)
    assert np.allclose(normalized.mean(axis=0), 0, atol=1e-6)
    assert np.isclose(np.linalg.norm(normalized, axis=1).max(), 1.0)
    assert np.allclose(normalized * scale + centroid, points, atol=1e-6)
    single, _, one = normalize_cloud(points[:1])
    assert one == 1.0 and np.array_equal(single, np.zeros((1, 3), np.float32))
    with pytest.raises(InvalidInputError, match=r"\(P, 3\)"):
        normalize_cloud(np.zeros((0, 3), np.float32))

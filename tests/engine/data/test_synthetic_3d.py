"""Synthetic parts with XYZ maps: determinism, sensor realism, 3D-only defects, MVTec 3D layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data import (
    DEFECT_TYPES,
    DEFECT_TYPES_3D,
    discover_dataset,
    foreground_mask,
    read_mask,
    read_rgb,
    read_xyz,
    render_part,
    render_part_3d,
    write_synthetic_dataset,
)
from engine.errors import InvalidInputError


def render(seed: int, defect: str | None = None, size: int = 256):
    return render_part_3d(np.random.default_rng(seed), size, defect)


@pytest.mark.parametrize("defect", [None, *DEFECT_TYPES, *DEFECT_TYPES_3D])
def test_same_seed_same_arrays_and_rgb_matches_the_2d_render(defect: str | None) -> None:
    first, second = render(4, defect, 128), render(4, defect, 128)
    assert all(np.array_equal(a, b) for a, b in zip(first[:3], second[:3], strict=True))
    if defect not in DEFECT_TYPES_3D:
        image, mask = render_part(np.random.default_rng(4), 128, defect)
        assert np.array_equal(first[0], image) and np.array_equal(first[2], mask)


def test_xyz_looks_like_a_sensor() -> None:
    image, xyz, mask, geom = render(0)
    assert xyz.shape == (256, 256, 3) and xyz.dtype == np.float32 and not mask.any()
    valid = foreground_mask(xyz)
    assert 0.001 < 1 - valid.mean() < 0.03  # a few missing points, not many
    z = xyz[..., 2]
    assert 0.57 < z[valid].min() and z[valid].max() < 0.62  # ~0.6 m from the camera
    surface = geom.surface()
    # The part stands 10-20 mm proud of the table; its bore shows the table again.
    radius, _ = geom.polar()
    top = surface & (radius > geom.bore_radius + 8) & (radius < geom.radius - geom.bevel - 2)
    table = ~surface & (radius > geom.radius + 4)
    bore = radius < geom.bore_radius - 4
    rise = np.median(z[table & valid]) - np.median(z[top & valid])
    assert 0.010 < rise < 0.020
    assert abs(np.median(z[bore & valid]) - np.median(z[table & valid])) < 0.003
    # Missing points sit at the walls (rim, bore), not on the flat top.
    assert (~valid & top).mean() < 0.002
    # Sensor noise ~0.1 mm: a flat patch deviates from its best plane by about that much.
    rows, cols = np.nonzero(top & valid)
    design = np.column_stack([xyz[rows, cols, 0], xyz[rows, cols, 1], np.ones(rows.size)])
    residual = z[rows, cols] - design @ np.linalg.lstsq(design, z[rows, cols], rcond=None)[0]
    assert 5e-5 < residual.std() < 2e-4


@pytest.mark.parametrize("defect", DEFECT_TYPES_3D)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_3d_defects_change_shape_only(defect: str, seed: int) -> None:
    image, xyz, mask, geom = render(seed, defect)
    normal_image, normal_xyz, _, same_geom = render(seed)
    assert same_geom == geom and not (mask & ~geom.surface()).any()
    assert 0.002 < mask.mean() < 0.03  # a disk of radius 8-15 px on a 256 px image
    # Invisible in RGB: the image is the normal twin's, bit for bit.
    assert np.abs(image.astype(int) - normal_image.astype(int)).mean() == 0.0
    both = foreground_mask(xyz) & foreground_mask(normal_xyz)
    assert np.array_equal(foreground_mask(xyz), foreground_mask(normal_xyz))
    dz = xyz[..., 2] - normal_xyz[..., 2]  # > 0: farther from the camera, i.e. pressed in
    sign = 1.0 if defect == "dent" else -1.0
    assert (sign * dz[mask & both]).min() >= 0.49e-3  # at least half of a >= 1 mm depth
    assert 1e-3 <= (sign * dz[mask & both]).max() <= 2.01e-3
    assert np.abs(dz[~mask & both]).max() < np.abs(dz[mask & both]).min()
    far = ~_dilate(mask, 16)  # beyond the smooth shoulder nothing changes at all
    assert np.array_equal(xyz[far], normal_xyz[far])


def test_rgb_defects_keep_the_shape_and_missing_bites_it() -> None:
    for defect in ("scratch", "spot"):
        _, xyz, mask, geom = render(5, defect)
        z, valid = xyz[..., 2], foreground_mask(xyz)
        radius, _ = geom.polar()
        top = mask & valid
        # Scratch and spot pixels lie on the flat part top, 15 mm above the table.
        table = valid & (radius > geom.radius + 4)
        assert np.median(z[table]) - z[top].max() > 0.010
    _, xyz, mask, geom = render(5, "missing")
    z, valid = xyz[..., 2], foreground_mask(xyz)
    inner = mask & ~_dilate(~mask, 2) & valid  # away from the bite's walls
    radius, _ = geom.polar()
    table = np.median(z[valid & (radius > geom.radius + 4)])
    assert inner.any() and np.abs(z[inner] - table).max() < 0.004  # the table shows in the bite


def test_unknown_and_3d_only_defects_in_2d_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="'crack'"):
        render(0, "crack")
    with pytest.raises(InvalidInputError, match="'bump'.*only in 3D"):
        render_part(np.random.default_rng(0), defect="bump")
    with pytest.raises(InvalidInputError, match="with_xyz=True"):
        write_synthetic_dataset("unused", defects=("dent",))


def test_mvtec3d_round_trip(tmp_path: Path) -> None:
    defects = ("scratch", "dent", "bump")
    options = {"n_good": 4, "n_per_defect": 2, "size": 96, "seed": 5}
    out = write_synthetic_dataset(tmp_path / "line", **options, with_xyz=True, defects=defects)
    index = discover_dataset(out)
    assert (index.layout, index.category, len(index.samples)) == ("mvtec3d", "line", 10)
    assert {s.defect_type for s in index.samples} == {"good", *defects}
    assert all(s.label is not None for s in index.samples) and index.has_xyz
    assert index.warnings == [] and not index.skipped
    for sample in index.samples:
        xyz = read_xyz(sample.xyz_path, (96, 96))
        assert xyz.dtype == np.float32 and read_rgb(sample.rgb_path).shape == (96, 96, 3)
        assert read_mask(sample.mask_path, (96, 96)).any() == (sample.label == 1)
    # RGB does not depend on with_xyz, and the dataset is byte-for-byte reproducible.
    flat = write_synthetic_dataset(tmp_path / "flat", **options)
    assert (flat / "test/good/001.png").read_bytes() == (out / "test/good/rgb/001.png").read_bytes()
    again = write_synthetic_dataset(tmp_path / "again", **options, with_xyz=True, defects=defects)
    files = sorted(p.relative_to(out) for p in out.rglob("*.*"))
    assert len(files) == 30
    assert all((out / f).read_bytes() == (again / f).read_bytes() for f in files)


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        mask = mask | np.roll(mask, 1, 0) | np.roll(mask, -1, 0)
        mask = mask | np.roll(mask, 1, 1) | np.roll(mask, -1, 1)
    return mask

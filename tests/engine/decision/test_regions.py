"""Defect regions: connected components, minimum area, areas in mm² and heights from XYZ."""

from __future__ import annotations

import numpy as np
import pytest

from engine.decision.regions import part_defects, pixel_areas_mm2, region_height_mm


def _plane_xyz(size: int = 40, pitch_m: float = 1e-3, z: float = 0.5) -> np.ndarray:
    """A flat surface facing the sensor at distance ``z``: 1 mm per pixel."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    return np.stack([u * pitch_m, v * pitch_m, np.full_like(u, z)], axis=2)


def test_regions_are_connected_components_above_the_cut():
    anomaly = np.zeros((20, 20), dtype=np.float32)
    anomaly[2:5, 2:5] = 1.0  # 9 px
    anomaly[10:12, 10:20] = 0.8  # 20 px
    found = part_defects(anomaly, 0.5)
    assert [r.area_px for r in found.regions] == [20, 9]  # largest first
    assert found.area_px == 29 and int(found.mask.sum()) == 29
    assert found.regions[1].bbox == (2, 2, 3, 3) and found.regions[1].peak == pytest.approx(1.0)
    assert found.area_mm2 is None and found.regions[0].height_mm is None


def test_the_cut_is_inclusive():
    anomaly = np.full((4, 4), 0.5, dtype=np.float32)
    assert part_defects(anomaly, 0.5).area_px == 16
    assert part_defects(anomaly, np.nextafter(np.float32(0.5), np.float32(1))).area_px == 0


def test_minimum_area_drops_specks_from_mask_and_regions():
    anomaly = np.zeros((20, 20), dtype=np.float32)
    anomaly[2:5, 2:5] = 1.0  # 9 px
    anomaly[15, 15] = 1.0  # 1 px speck
    found = part_defects(anomaly, 0.5, min_area_px=9)
    assert [r.area_px for r in found.regions] == [9]
    assert int(found.mask.sum()) == 9 and not found.mask[15, 15]
    assert part_defects(anomaly, 0.5, min_area_px=10).regions == ()


def test_areas_in_mm2_on_a_flat_plane_of_1_mm_pixels():
    xyz = _plane_xyz()
    assert pixel_areas_mm2(xyz)[5:-5, 5:-5] == pytest.approx(1.0)
    anomaly = np.zeros((40, 40), dtype=np.float32)
    anomaly[10:20, 10:15] = 1.0  # 50 px of 1 mm²
    found = part_defects(anomaly, 0.5, xyz=xyz)
    assert found.area_mm2 == pytest.approx(50.0)
    assert part_defects(anomaly, 0.5, xyz=xyz, min_area_mm2=60.0).regions == ()
    empty = part_defects(np.zeros((40, 40), dtype=np.float32), 0.5, xyz=xyz)
    assert empty.area_mm2 == 0.0  # measured: no defect, not "unknown"


def test_missing_points_count_nothing():
    xyz = _plane_xyz()
    xyz[:, :20] = 0.0
    areas = pixel_areas_mm2(xyz)
    assert (areas[:, :20] == 0).all() and areas[5:-5, 25:-5] == pytest.approx(1.0)


@pytest.mark.parametrize("step_mm", [2.0, -3.0])
def test_height_is_signed_towards_the_sensor(step_mm: float):
    xyz = _plane_xyz()
    region = np.zeros((40, 40), dtype=bool)
    region[15:25, 15:25] = True
    # the sensor sits at the origin looking along +z: a bump comes closer (smaller z)
    xyz[region, 2] -= step_mm / 1000.0
    assert region_height_mm(xyz, region) == pytest.approx(step_mm, abs=1e-6)


def test_height_on_a_tilted_surface_is_measured_against_the_local_plane():
    xyz = _plane_xyz()
    xyz[..., 2] += xyz[..., 0] * 0.5  # tilted 26.6 degrees
    region = np.zeros((40, 40), dtype=bool)
    region[15:25, 15:25] = True
    normal = np.array([-0.5, 0.0, 1.0]) / np.linalg.norm([-0.5, 0.0, 1.0])
    xyz[region] -= normal * 1e-3  # 1 mm along the surface normal, towards the sensor
    assert region_height_mm(xyz, region) == pytest.approx(1.0, abs=1e-6)


def test_height_needs_surrounding_surface():
    xyz = np.zeros((40, 40, 3))
    region = np.zeros((40, 40), dtype=bool)
    region[15:25, 15:25] = True
    xyz[region] = (0.0, 0.0, 0.5)
    assert region_height_mm(xyz, region) is None


def test_foreground_bounds_the_regions():
    anomaly = np.zeros((20, 20), dtype=np.float32)
    anomaly[2:10, 2:10] = 1.0
    foreground = np.zeros((20, 20), dtype=bool)
    foreground[:, :6] = True
    found = part_defects(anomaly, 0.5, foreground=foreground)
    assert found.area_px == 8 * 4 and not found.mask[:, 6:].any()


def test_height_ignores_a_step_in_part_of_the_ring():
    xyz = _plane_xyz()
    region = np.zeros((40, 40), dtype=bool)
    region[15:25, 15:25] = True
    xyz[region, 2] -= 2e-3  # a 2 mm bump
    xyz[:, 30:, 2] += 20e-3  # the table 20 mm below, reached by one side of the ring
    assert region_height_mm(xyz, region) == pytest.approx(2.0, abs=0.05)


def test_height_is_measured_inside_the_region_only():
    xyz = _plane_xyz()
    region = np.zeros((40, 40), dtype=bool)
    region[5:10, 5:10] = True
    xyz[region, 2] -= 1e-3  # the region: a 1 mm bump
    xyz[30:35, 30:35, 2] -= 9e-3  # a taller bump elsewhere on the part, far from the ring
    assert region_height_mm(xyz, region) == pytest.approx(1.0, abs=1e-6)

"""The shared heatmap scale: good parts quiet, outlined defects coloured."""

from __future__ import annotations

import numpy as np
import pytest

from engine.decision.display import colorize, heatmap_levels, outline, overlay


def _maps() -> np.ndarray:
    # 4 parts of 100 px: background 0.1 (40 px), surface 0.5..0.6 (60 px), one with a 0.9 defect
    maps = np.full((4, 100), 0.1)
    maps[:, 40:] = np.linspace(0.5, 0.6, 60)
    maps[3, :3] = 0.9
    return maps.reshape(4, 10, 10)


def test_the_scale_starts_at_the_parts_surface_not_the_background():
    low, high = heatmap_levels(_maps())
    surface_p95 = np.percentile(np.r_[np.full(40, 0.1), np.linspace(0.5, 0.6, 60)], 95)
    assert low == pytest.approx(surface_p95) and high == pytest.approx(0.9)


def test_the_scale_keeps_the_pixel_cut_inside():
    assert heatmap_levels(_maps(), pixel_cut=0.3)[0] == pytest.approx(0.3)
    assert heatmap_levels(_maps(), pixel_cut=2.0)[1] == pytest.approx(2.0)
    flat = heatmap_levels(np.zeros((2, 4, 4)))
    assert flat[1] > flat[0]


def test_overlay_is_transparent_below_the_scale_and_coloured_above():
    rgb = np.full((10, 10, 3), 100, np.uint8)
    levels = heatmap_levels(_maps())
    shown = overlay(rgb, _maps()[3], levels)
    assert (shown.reshape(100, 3)[40:50] == 100).all()  # normal surface: the image itself
    assert not (shown.reshape(100, 3)[:3] == 100).all()  # the defect is coloured
    assert colorize(np.array([[levels[1]]]), levels)[0, 0].tolist() == [252, 255, 164]


def test_outline_draws_the_mask_boundary_only():
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    drawn = outline(np.zeros((20, 20, 3), np.uint8), mask, (0, 255, 255))
    assert drawn[5, 5].tolist() == [0, 255, 255] and drawn[10, 10].tolist() == [0, 0, 0]

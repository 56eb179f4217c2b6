"""The report's 3D picture: readable, coloured like the heatmap, framed on the defect, fast."""

from __future__ import annotations

import time

import numpy as np
import pytest

from engine.decision.display import colorize
from engine.decision.regions import part_defects
from engine.outputs.snapshot import (
    GREY,
    LEGEND_PX,
    SIZE,
    defect_focus,
    point_colours,
    render_snapshot,
)

GRID = 96
LEVELS, CUT = (0.1, 0.9), 0.5


def plate(bump_height: float = 0.002) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 48 mm square plate 0.6 m from the sensor on the map grid, with a 6 mm bump whose map
    values are high (0.9) at (row 60, col 30); (xyz, values, pixel_index)."""
    rows, cols = np.mgrid[0:GRID, 0:GRID]
    u, v = (cols - GRID / 2) * 0.0005, (rows - GRID / 2) * 0.0005
    distance = np.hypot(rows - 60, cols - 30)
    bump = distance <= 6
    z = 0.6 - bump_height * np.clip(1 - distance / 6, 0, 1)
    xyz = np.stack([u, v, z], axis=2).reshape(-1, 3).astype(np.float32)
    values = np.where(bump, 0.9, 0.1).ravel()
    return xyz, values, np.arange(GRID * GRID)


def _drawing(picture: np.ndarray) -> np.ndarray:
    return picture[: SIZE[1] - 28, : SIZE[0] - LEGEND_PX]


def _coloured(pixels: np.ndarray) -> np.ndarray:
    """Pixels that are clearly not grey (the heatmap colours of the defect)."""
    channels = pixels.astype(int)
    return (channels.max(axis=-1) - channels.min(axis=-1)) > 40


def test_picture_is_light_and_frames_the_defect():
    xyz, values, index = plate()
    focus = values >= CUT
    picture = render_snapshot(xyz, values, index, GRID, LEVELS, CUT, focus)
    assert picture.shape == (SIZE[1], SIZE[0], 3) and picture.dtype == np.uint8
    drawing = _drawing(picture)
    assert drawing.mean() > 110  # not nearly black
    share = _coloured(drawing).mean()
    # The bump is 1.2 % of the plate; framed with a margin it fills a good part of the view.
    assert share > 0.08, share
    whole = render_snapshot(xyz, values, index, GRID, LEVELS, CUT, np.ones_like(focus))
    assert _coloured(_drawing(whole)).mean() < 0.05  # the same bump, framed on the plate


def test_points_below_the_cut_are_grey_and_defect_colours_are_the_heatmaps():
    xyz, values, index = plate(bump_height=0.0)  # flat: every pixel gets the same shading
    values = np.where(values > 0.5, 0.9, 0.3)
    picture = render_snapshot(xyz, values, index, GRID, LEVELS, CUT, values >= CUT)
    drawing = _drawing(picture)
    grey = ~_coloured(drawing) & (drawing.astype(int).sum(axis=-1) < 3 * 230)
    assert grey.mean() > 0.3  # the plate around the bump, grey although scored 0.3 (> low)
    hot = drawing[_coloured(drawing)]
    expected = point_colours(np.array([0.9]), LEVELS, CUT)[0].astype(float)
    ratio = hot.mean(axis=0) / expected  # one shading factor for a flat plate
    assert np.allclose(ratio, ratio.mean(), atol=0.08)


def test_point_colours():
    colours = point_colours(np.array([0.05, 0.49, 0.5, 0.9]), LEVELS, CUT)
    assert (colours[:2] == GREY).all()
    assert colours[3].tolist() == colorize(np.array([[0.9]]), LEVELS)[0, 0].tolist()
    assert colours[2].max() > 60  # just above the cut: not near black


def test_defect_focus_picks_the_points_of_the_largest_region():
    _, values, index = plate()
    small = np.zeros((GRID, GRID))
    small[10:12, 80:82] = 0.9  # a second, smaller region
    anomaly_map = values.reshape(GRID, GRID) + small
    defects = part_defects(anomaly_map, CUT)
    focus = defect_focus(index, GRID, defects, (GRID, GRID))
    assert focus.sum() == defects.regions[0].area_px
    assert (anomaly_map.ravel()[focus] >= CUT).all() and not focus.reshape(GRID, GRID)[10, 80]


def test_empty_cloud_gives_the_background():
    picture = render_snapshot(np.zeros((0, 3)), np.zeros(0), np.zeros(0, int), GRID, LEVELS, CUT)
    assert (picture == picture[0, 0]).all()


def test_fifty_thousand_points_render_quickly():
    rng = np.random.default_rng(0)
    grid = 256
    index = rng.choice(grid * grid, 50_000, replace=False)
    rows, cols = np.divmod(index, grid)
    xyz = np.stack([cols * 2e-4, rows * 2e-4, 0.6 + 1e-5 * rng.random(len(index))], axis=1)
    values = rng.random(len(index))
    render_snapshot(xyz, values, index, grid, (0.0, 1.0), 0.5)  # warm-up
    started = time.perf_counter()
    render_snapshot(xyz, values, index, grid, (0.0, 1.0), 0.5, values > 0.999)
    assert time.perf_counter() - started < 1.0  # about 0.04 s; generous on a shared machine


@pytest.mark.parametrize("focus", [None, "empty"])
def test_without_a_focus_the_top_points_are_framed(focus):
    xyz, values, index = plate()
    chosen = None if focus is None else np.zeros(len(values), dtype=bool)
    picture = render_snapshot(xyz, values, index, GRID, LEVELS, CUT, chosen)
    assert _coloured(_drawing(picture)).mean() > 0.05

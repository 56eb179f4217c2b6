"""ImageView: the current sample's image, heatmap, contours and cursor readout (offscreen)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from musc_gui.state import AppState
from musc_gui.views.image_view import (
    ImageView,
    default_pixel_threshold,
    grid_pixel,
    map_levels,
    pixel_centre,
)


@pytest.fixture
def view(qtbot, scored_line):
    _, result = scored_line
    state = AppState()
    widget = ImageView(state)
    qtbot.addWidget(widget)
    state.set_result(result)
    return state, widget, result


def _index(result, label):
    return next(i for i, s in enumerate(result.samples) if s.label == label)


def test_pure_helpers():
    maps = np.stack([np.zeros((4, 4)), np.full((4, 4), 2.0)]).astype(np.float32)
    maps[0, 0, 0] = 1.0
    assert map_levels(maps, 0, "global") == (0.0, 2.0)
    assert map_levels(maps, 0, "per image") == (0.0, 1.0)
    assert map_levels(maps, 1, "per image")[0] == 2.0  # flat map still gets a usable range
    assert default_pixel_threshold(maps) == pytest.approx(maps.mean() + 3 * maps.std())
    # 8x16 image (H, W) over a 4x4 grid: x=15 -> col 3, y=7 -> row 3
    assert grid_pixel((8, 16), 4, 15.9, 7.9) == 15
    assert grid_pixel((8, 16), 4, 4.0, 0.0) == 1  # x is the column, not transposed
    assert grid_pixel((8, 16), 4, 16.0, 0.0) == -1
    assert pixel_centre(1, 4, (8, 16)) == (6.0, 1.0)


def test_shows_current_sample(view):
    state, widget, result = view
    assert widget.overlay_item.image is None
    state.set_current(2)
    assert widget.overlay_item.image.shape == result.maps[2].shape
    np.testing.assert_array_equal(widget.overlay_item.image, result.maps[2])
    height, width = result.image_sizes[2]
    assert widget.image_item.image.shape == (height, width, 3)
    # the square map is stretched over the image rectangle, not transposed
    rect = widget.overlay_item.mapRectToParent(widget.overlay_item.boundingRect())
    assert (rect.width(), rect.height()) == (width, height)
    state.set_current(-1)
    assert widget.overlay_item.image is None


def test_normalisation_levels(view):
    state, widget, result = view
    state.set_current(0)
    global_0 = tuple(widget.overlay_item.levels)
    state.set_current(3)
    assert tuple(widget.overlay_item.levels) == pytest.approx(global_0)
    assert global_0 == pytest.approx((result.maps.min(), result.maps.max()))
    widget.norm_combo.setCurrentText("per image")
    assert widget.overlay_item.levels[1] == pytest.approx(result.maps[3].max())
    state.set_current(0)
    assert widget.overlay_item.levels[1] == pytest.approx(result.maps[0].max())
    assert result.maps[0].max() != pytest.approx(result.maps[3].max())


def test_ground_truth_contour(view):
    state, widget, result = view
    defect = next(i for i, s in enumerate(result.samples) if s.defect_type == "scratch")
    state.set_current(defect)
    assert widget.gt_check.isEnabled()
    assert not widget.gt_curve.isVisible()
    widget.gt_check.setChecked(True)
    assert widget.gt_curve.isVisible()
    assert not widget.gt_curve.boundingRect().isEmpty()  # a real outline was traced
    widget.gt_check.setChecked(False)
    assert not widget.gt_curve.isVisible()


def test_threshold_contour(view):
    state, widget, result = view
    assert widget.threshold_spin.value() == pytest.approx(
        default_pixel_threshold(result.maps), abs=1e-4
    )
    state.set_current(_index(result, 1))
    assert widget.threshold_curve.data is not None
    widget.threshold_check.setChecked(False)
    assert widget.threshold_curve.data is None


def test_cursor_value_and_pointing(view, qtbot):
    state, widget, result = view
    index = 0
    state.set_current(index)
    height, width = result.image_sizes[index]
    grid = result.maps.shape[1]
    x, y = 0.7 * width, 0.3 * height  # away from the diagonal so a transpose would show
    row, col = int(y * grid / height), int(x * grid / width)
    pixel, value = widget.value_at(x, y)
    assert pixel == row * grid + col
    assert value == pytest.approx(float(result.maps[index, row, col]))
    # through the scene, as a mouse move would arrive
    widget._on_mouse_moved(widget.view_box.mapViewToScene(QPointF(x, y)))
    assert f"{value:.4f}" in widget.cursor_label.text()
    assert f"x {int(x)}, y {int(y)}" in widget.cursor_label.text()
    with qtbot.waitSignal(state.pointed_changed):
        state.set_pointed(pixel)
    assert len(widget.marker.data) == 1
    state.set_current(1)  # a new sample clears the pointed pixel
    assert state.pointed == -1 and len(widget.marker.data) == 0


def test_opacity_and_colormap(view):
    state, widget, _ = view
    state.set_current(0)
    widget.opacity_slider.setValue(20)
    assert widget.overlay_item.opacity() == pytest.approx(0.2)
    lut_before = widget.overlay_item.getColorMap().getLookupTable(nPts=8)
    widget.colormap_combo.setCurrentText("viridis")
    lut_after = widget.overlay_item.getColorMap().getLookupTable(nPts=8)
    assert not np.array_equal(lut_before, lut_after)

"""ImageView: heatmap, the decision's defect outline, ground truth, controls, cursor (offscreen)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from engine.data.readers import read_xyz
from engine.decision import DecisionPolicy, decide
from engine.decision.display import heatmap_levels
from engine.decision.regions import PartDefects, Region
from musc_gui.state import AppState
from musc_gui.views.heatmap import (
    displayed_map,
    grid_pixel,
    measured,
    pixel_centre,
    regions_text,
    view_levels,
)
from musc_gui.views.image_view import OPACITY_MIN_WIDTH, ImageView, outline_path


@pytest.fixture
def view(qtbot, scored_line):
    _, result = scored_line
    state = AppState()
    widget = ImageView(state)
    qtbot.addWidget(widget)
    state.set_result(result)
    state.set_decision(decide(result))
    return state, widget, result


def _index(result, defect_type):
    return next(i for i, s in enumerate(result.samples) if s.defect_type == defect_type)


def _finite_xy(curve):
    x, y = curve.getData()
    if x is None:
        return np.zeros((0, 2))
    xy = np.c_[x, y]
    return xy[np.isfinite(xy).all(axis=1)]


def test_pure_helpers():
    maps = np.stack([np.zeros((4, 4)), np.full((4, 4), 2.0)]).astype(np.float32)
    maps[0, 0, 0] = 1.0
    assert view_levels(maps, 0, "global", 1.5) == heatmap_levels(maps, 1.5)
    assert view_levels(maps, 0, "per image", 1.5) == heatmap_levels(maps[:1])
    assert view_levels(maps, 1, "per image", None)[1] > 2.0  # a flat map still gets a range
    shown = displayed_map(maps[0], 0.5, foreground=np.eye(4, dtype=bool))
    assert shown[0, 0] == 1.0  # above the low level and measured
    assert np.isnan(shown[1, 1])  # measured but below the low level
    maps[0, 0, 1] = 1.0
    assert np.isnan(displayed_map(maps[0], 0.5, np.eye(4, dtype=bool))[0, 1])  # not measured
    xyz = np.zeros((2, 2, 3))
    xyz[0, 1] = (0, 0, 0.3)
    np.testing.assert_array_equal(measured(xyz), [[False, True], [False, False]])
    # 8x16 image (H, W) over a 4x4 grid: x=15 -> col 3, y=7 -> row 3
    assert grid_pixel((8, 16), 4, 15.9, 7.9) == 15
    assert grid_pixel((8, 16), 4, 4.0, 0.0) == 1  # x is the column, not transposed
    assert grid_pixel((8, 16), 4, 16.0, 0.0) == -1
    assert pixel_centre(1, 4, (8, 16)) == (6.0, 1.0)


def test_regions_text_and_outline():
    assert "No decision" in regions_text(None)
    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:5] = True
    regions = (Region(6, 1.5, -0.25, (2, 1, 3, 2), (3.0, 1.5), 0.9),
               Region(2, None, None, (0, 0, 1, 2), (0.0, 0.5), 0.8))  # fmt: skip
    text = regions_text(PartDefects(mask, regions, has_xyz=True))
    assert text.startswith("2 defect regions (8 px = 1.50 mm²)")
    assert "6 px, 1.50 mm², height -0.25 mm; 2 px" in text
    one = regions_text(PartDefects(mask, regions[:1], has_xyz=True))
    assert one == "1 defect region: 6 px, 1.50 mm², height -0.25 mm"
    assert regions_text(PartDefects(mask, ())) == "No defect region above the pixel cut."
    x, y = outline_path(mask)
    xy = np.c_[x, y][np.isfinite(x)]
    # vertices are boundary pixels of the mask, centred on the pixel (+ 0.5)
    assert {(int(a - 0.5), int(b - 0.5)) for a, b in xy} == {
        (2, 1), (3, 1), (4, 1), (2, 2), (3, 2), (4, 2)}  # fmt: skip
    assert outline_path(np.zeros((3, 3), bool))[0].size == 0


def test_heatmap_is_the_map_at_image_size_with_hidden_pixels(view, scored_line):
    state, widget, result = view
    assert widget.overlay_item.image is None
    index = _index(result, "scratch")
    state.set_current(index)
    height, width = result.image_sizes[index]
    shown = widget.overlay_item.image
    assert shown.shape == (height, width)  # the resolution the regions are cut at
    low, high = widget.levels()
    assert (low, high) == pytest.approx(heatmap_levels(result.maps, state.decision.pixel.value))
    full = result.anomaly_map(index)
    visible = np.isfinite(shown)
    np.testing.assert_allclose(shown[visible], full[visible])
    assert (full[~visible] < low).sum() > 0  # normal surface hidden ...
    valid = np.any(read_xyz(result.samples[index].xyz_path, (height, width)) != 0, axis=2)
    assert (~valid).sum() > 0
    assert np.isnan(shown[~valid]).all()  # ... and pixels without a measured point
    assert visible[valid & (full >= low)].all()
    rect = widget.overlay_item.mapRectToParent(widget.overlay_item.boundingRect())
    assert (rect.width(), rect.height()) == (width, height)
    assert tuple(widget.overlay_item.levels) == pytest.approx((low, high))
    state.set_current(-1)
    assert widget.overlay_item.image is None


def _several_regions(result):
    """(index, xyz, cut, loose defects) of a part where a lower pixel cut finds 2+ regions."""
    for index in (_index(result, "scratch"), _index(result, "spot"), _index(result, "missing")):
        xyz = read_xyz(result.samples[index].xyz_path, result.image_sizes[index])
        for share in (0.97, 0.95, 0.99, 0.9, 0.85, 0.8):
            cut = float(np.quantile(result.maps[index], share))
            policy = DecisionPolicy(pixel=cut, min_area_px=0)
            loose = decide(result, policy).defects(result, index, xyz)
            if len({round(r.area_mm2, 6) for r in loose.regions}) >= 2:
                return index, xyz, cut, loose
    raise AssertionError("no part of the fixture has two defect regions at any cut")


def test_outline_is_the_decisions_defect_mask(view):
    state, widget, result = view
    # a lower pixel cut gives several regions; a mm² floor between their areas drops some
    # of them, which only a view that passes the part's XYZ to the decision gets right
    index, xyz, cut, loose = _several_regions(result)
    areas = sorted(r.area_mm2 for r in loose.regions)
    policy = DecisionPolicy(pixel=cut, min_area_px=0, min_area_mm2=(areas[0] + areas[-1]) / 2)
    decision = decide(result, policy)
    state.set_current(index)
    state.set_decision(decision)
    expected = decision.defects(result, index, xyz)
    assert 0 < len(expected.regions) < len(loose.regions)
    np.testing.assert_array_equal(widget.defects.mask, expected.mask)
    drawn = _finite_xy(widget.defect_curve) - 0.5
    rows, cols = drawn[:, 1].astype(int), drawn[:, 0].astype(int)
    assert expected.mask[rows, cols].all()  # every outline vertex is a defect pixel ...
    for region in expected.regions:  # ... and every region is outlined
        x, y, w, h = region.bbox
        assert ((cols >= x) & (cols < x + w) & (rows >= y) & (rows < y + h)).any()
    assert f"{len(expected.regions)} defect region" in widget.regions_label.text()
    assert "mm²" in widget.regions_label.text()
    widget.defects_check.setChecked(False)
    assert not widget.defect_curve.isVisible()
    state.set_decision(None)
    assert widget.defects is None and _finite_xy(widget.defect_curve).size == 0
    assert "No decision" in widget.regions_label.text()


def test_h_toggles_the_heatmap(view, qtbot):
    state, widget, _ = view
    state.set_current(0)
    widget.show()
    widget.activateWindow()
    qtbot.waitUntil(widget.isActiveWindow)  # a window shortcut needs the active window
    widget.graphics.setFocus()
    assert widget.overlay_item.isVisible() and widget.heatmap_check.isChecked()
    qtbot.keyClick(widget.graphics, Qt.Key.Key_H)
    assert not widget.overlay_item.isVisible() and not widget.heatmap_check.isChecked()
    qtbot.keyClick(widget.graphics, Qt.Key.Key_H)
    assert widget.overlay_item.isVisible()
    widget.heatmap_check.setChecked(False)  # the checkbox is the same switch
    assert not widget.heatmap_action.isChecked() and not widget.overlay_item.isVisible()


def test_controls_fit_a_narrow_view(view, qtbot):
    state, widget, _ = view
    state.set_current(0)
    widget.resize(550, 500)
    widget.show()
    qtbot.waitExposed(widget)
    assert widget.opacity_slider.minimumWidth() >= OPACITY_MIN_WIDTH >= 100
    assert widget.opacity_slider.width() >= 100
    for control in (widget.heatmap_check, widget.norm_combo, widget.opacity_slider,
                    widget.defects_check, widget.gt_check):  # fmt: skip
        right = control.mapTo(widget, control.rect().topRight()).x()
        assert right <= widget.width(), f"{control} is cut off at 550 px"
    widget.opacity_slider.setValue(20)
    assert widget.overlay_item.opacity() == pytest.approx(0.2)


def test_normalisation_levels(view):
    state, widget, result = view
    state.set_current(0)
    global_0 = widget.levels()
    state.set_current(3)
    assert widget.levels() == pytest.approx(global_0)
    widget.norm_combo.setCurrentText("per image")
    assert tuple(widget.overlay_item.levels) == pytest.approx(heatmap_levels(result.maps[3:4]))
    state.set_current(0)
    assert tuple(widget.overlay_item.levels) == pytest.approx(heatmap_levels(result.maps[0:1]))
    assert result.maps[0].max() != pytest.approx(result.maps[3].max())


def test_ground_truth_outline(view):
    state, widget, result = view
    state.set_current(_index(result, "scratch"))
    assert widget.gt_check.isEnabled() and widget.gt_check.isChecked()
    assert len(_finite_xy(widget.gt_curve)) > 10  # a real outline was traced
    assert widget.gt_curve.opts["pen"].color() != widget.defect_curve.opts["pen"].color()
    widget.gt_check.setChecked(False)
    assert len(_finite_xy(widget.gt_curve)) == 0


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
    widget._on_mouse_moved(widget.view_box.mapViewToScene(QPointF(x, y)))
    assert f"{value:.4f}" in widget.cursor_label.text()
    assert f"x {int(x)}, y {int(y)}" in widget.cursor_label.text()
    with qtbot.waitSignal(state.pointed_changed):
        state.set_pointed(pixel)
    assert len(widget.marker.data) == 1
    state.set_current(1)  # a new sample clears the pointed pixel
    assert state.pointed == -1 and len(widget.marker.data) == 0


def test_colormap(view):
    state, widget, _ = view
    state.set_current(0)
    lut_before = widget.overlay_item.lut.copy()
    widget.colormap_combo.setCurrentText("viridis")
    assert not np.array_equal(lut_before, widget.overlay_item.lut)
    assert widget.overlay_item.lut[0, 3] == 0 and widget.overlay_item.lut[-1, 3] == 255

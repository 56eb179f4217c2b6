"""CloudView: colouring rules and picking without GL, the no-OpenGL message, rendering under Xvfb.

The rendering test runs in a subprocess with its own Xvfb display and ``QT_QPA_PLATFORM=xcb``
(tests/gui/xvfb.py), because the Qt platform of this process is fixed (offscreen) once the first
widget exists; offscreen is also where the view must refuse OpenGL and show a message.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtOpenGLWidgets import QOpenGLWidget

from engine.decision import decide
from engine.decision.display import heatmap_levels
from engine.session.results import PointScores
from musc_gui.state import AppState
from musc_gui.views.cloud_colors import (
    GREY,
    display_coords,
    grey_below,
    point_levels,
    point_shading,
    point_values,
    rgb_colors,
    score_choices,
    score_colors,
    score_maps,
    shade,
    value_levels,
)
from musc_gui.views.cloud_gl import pick_point, pixel_of_point, point_at_pixel, project_points
from musc_gui.views.cloud_view import CloudView, opengl_problem
from tests.gui.xvfb import run_on_display

SHOTS = Path(os.environ.get("MUSC_GUI_SHOTS", "/tmp/gui_shots"))


def test_display_coords_is_a_rotation():
    xyz = np.array([[0.0, 0.0, 1.0], [1.0, 2.0, 1.5]], dtype=np.float32)
    pos = display_coords(xyz)
    np.testing.assert_allclose(pos.mean(axis=0), 0.0, atol=1e-7)
    # x kept, image-down y becomes display -y, nearer to the sensor (smaller z) is higher
    np.testing.assert_allclose(pos[1] - pos[0], [1.0, -2.0, -0.5])


def test_colours_greying_and_shading():
    cmap = pg.colormap.get("inferno")
    scores = np.array([0.0, 0.5, 1.0, 2.0], dtype=np.float32)
    colours = score_colors(scores, (0.0, 1.0), cmap)
    assert colours.shape == (4, 4) and colours.dtype == np.float32
    np.testing.assert_allclose(colours[2], colours[3])  # clipped to the top level
    assert colours[2, :3].sum() > colours[0, :3].sum()  # inferno: bright = anomalous
    fused = np.array([0.1, 0.2, 0.9, 0.3])  # grey follows these values, not the shown ones
    greyed = grey_below(colours, fused, 0.25)
    np.testing.assert_allclose(greyed[[0, 1]], [GREY, GREY])
    np.testing.assert_allclose(greyed[[2, 3]], colours[[2, 3]])
    np.testing.assert_allclose(grey_below(colours, fused, None), colours)  # no decision yet
    assert not np.allclose(colours[0], GREY)  # input not modified
    lit = shade(colours, np.array([1.0, 0.5, 0.5, 1.0], dtype=np.float32))
    np.testing.assert_allclose(lit[1, :3], colours[1, :3] * 0.5)
    np.testing.assert_allclose(lit[:, 3], colours[:, 3])  # alpha kept


def test_shading_follows_the_surface():
    grid = 12
    rows, cols = np.mgrid[0:grid, 0:grid]
    pixel_index = (rows * grid + cols).ravel()
    flat = np.c_[cols.ravel() * 1e-3, rows.ravel() * 1e-3, np.full(grid * grid, 0.3)]
    steep = flat.copy()
    steep[:, 2] = 0.3 + 3 * cols.ravel() * 1e-3  # a slope facing sideways, away from the light
    lit_flat = point_shading(PointScores(flat, np.zeros(len(flat)), pixel_index), grid)
    lit_steep = point_shading(PointScores(steep, np.zeros(len(flat)), pixel_index), grid)
    assert np.ptp(lit_flat) < 1e-6  # a plane is evenly lit
    assert lit_steep.mean() < lit_flat.mean() - 0.1


def test_rgb_colours_follow_the_pixel_grid():
    rgb = np.zeros((8, 16, 3), dtype=np.uint8)
    # a 4x4 grid over an 8x16 (H, W) image samples each cell's centre pixel:
    # cell 15 = (row 3, col 3) -> image (y 7, x 14); cell 0 -> (1, 2); cell 3 -> (1, 14)
    rgb[7, 14] = (255, 0, 0)
    rgb[1, 2] = (0, 255, 0)
    colours = rgb_colors(rgb, np.array([15, 0, 3]), grid=4)
    np.testing.assert_allclose(colours[0], [1, 0, 0, 1])
    np.testing.assert_allclose(colours[1], [0, 1, 0, 1])
    np.testing.assert_allclose(colours[2], [0, 0, 0, 1])


def test_score_choices_sample_their_maps(scored_line):
    _, result = scored_line
    assert score_choices(result) == ["fused", "2d", "3d"]
    index = next(i for i, s in enumerate(result.samples) if s.defect_type == "bump")
    points = result.points[index]
    row, col = divmod(int(points.pixel_index[7]), result.maps.shape[1])
    values = {}
    for choice, maps in (("fused", result.maps), ("2d", result.modality_maps["2d"]),
                         ("3d", result.modality_maps["3d"])):  # fmt: skip
        assert score_maps(result, choice) is maps
        values[choice] = point_values(maps, index, points)
        assert values[choice][7] == pytest.approx(float(maps[index, row, col]))
    assert not np.allclose(values["2d"], values["3d"])
    cut = decide(result).pixel.value
    assert value_levels(result.maps, values["fused"], "global", cut) == heatmap_levels(
        result.maps, cut
    )
    assert value_levels(result.maps, values["3d"], "per part", None) == pytest.approx(
        (values["3d"].min(), values["3d"].max())
    )


def test_pixel_point_mapping():
    pixel_index = np.array([5, 9, 12])
    assert point_at_pixel(pixel_index, 9) == 1
    assert point_at_pixel(pixel_index, 7) == -1  # background pixel
    assert point_at_pixel(pixel_index, -1) == -1
    assert pixel_of_point(pixel_index, 2) == 12
    assert pixel_of_point(pixel_index, 3) == -1


def test_projection_and_picking():
    pos = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.5]])
    screen, depth = project_points(pos, np.eye(4), 200, 100)
    np.testing.assert_allclose(screen[0], [100, 50])
    np.testing.assert_allclose(screen[1], [150, 25])  # +y is up on screen
    # two points under the click: the one nearer the camera (smaller depth) wins
    assert pick_point(screen, depth, (101, 50)) == 0
    assert pick_point(screen, depth, (10, 10)) == -1
    assert pick_point(screen[:0], depth[:0], (0, 0)) == -1


def test_point_levels_are_global(scored_line):
    _, result = scored_line
    low, high = point_levels(result.points)
    every = np.concatenate([p.scores for p in result.points if p is not None])
    assert (low, high) == pytest.approx((every.min(), every.max()))
    assert point_levels([None]) == (0.0, 1.0)


def test_without_opengl_a_message_and_no_gl_widget(qtbot, scored_line):
    """Offscreen has no OpenGL: the view says why, makes no GL widget and ignores the state."""
    _, result = scored_line
    problem = opengl_problem()
    assert problem is not None and "offscreen" in problem
    state = AppState()
    view = CloudView(state)
    qtbot.addWidget(view)
    assert view.gl_problem == problem and not hasattr(view, "gl_view")
    assert not view.findChildren(QOpenGLWidget)
    assert view.stack.currentWidget() is view.message
    assert "3D view unavailable" in view.message.text() and problem in view.message.text()
    state.set_result(result)
    state.set_decision(decide(result))
    state.set_current(0)  # nothing breaks, nothing is drawn
    assert view.stack.currentWidget() is view.message and not view.has_points


# ---- the widget under a real X server --------------------------------------------------
_SCRIPT = r"""
import json, pickle, sys
import numpy as np
from PySide6.QtWidgets import QApplication
app = QApplication([])
from engine.decision import decide
from musc_gui.state import AppState
from musc_gui.views.cloud_colors import GREY, point_values, score_maps
from musc_gui.views.cloud_view import CloudView, opengl_problem
result = pickle.load(open(sys.argv[1], "rb"))
shots = sys.argv[2]
out = {"problem": opengl_problem()}
state = AppState()
view = CloudView(state)
view.resize(800, 600)
view.show()
state.set_result(result)
decision = decide(result)
state.set_decision(decision)
out["message_without_sample"] = view.stack.currentWidget() is view.message
index = next(i for i, s in enumerate(result.samples) if s.defect_type == "scratch")
state.set_current(index)
points = result.points[index]
for _ in range(5):
    app.processEvents()
out["has_points"] = view.has_points
out["n_colours"] = len(view.colors)
out["n_points"] = len(points.xyz)
out["choices"] = [view.score_combo.itemData(k) for k in range(view.score_combo.count())]
out["bar_levels"] = list(view.color_bar.levels())
image = view.gl_view.grabFramebuffer()
image.save(f"{shots}/cloud_view_score.png")
rgb = image.convertToFormat(image.Format.Format_RGB888)
arr = np.frombuffer(rgb.constBits(), np.uint8).reshape(rgb.height(), rgb.bytesPerLine())
arr = arr[:, : rgb.width() * 3].reshape(rgb.height(), rgb.width(), 3)
background = arr[2, 2].astype(int)
out["drawn_fraction"] = float((np.abs(arr.astype(int) - background).sum(axis=2) > 30).mean())
# grey below the cut (shading off, so grey is exactly GREY)
view.shade_check.setChecked(False)
fused = point_values(result.maps, index, points)
out["greyed"] = int(np.all(view.colors == np.array(GREY, np.float32), axis=1).sum())
out["below_cut"] = int((fused < decision.pixel.value).sum())
# each score choice shows its own map's values in its own colours
view.grey_check.setChecked(False)
colours, values = {}, {}
for k in range(view.score_combo.count()):
    view.score_combo.setCurrentIndex(k)
    key = view.score_combo.currentData()
    colours[key] = view.colors.copy()
    values[key] = bool(np.allclose(view.values, point_values(score_maps(result, key), index,
                                                               points)))
    view.grab().save(f"{shots}/cloud_view_{key}.png")
out["values_match"] = values
out["colours_differ"] = [bool(not np.allclose(colours[a], colours[b]))
                         for a, b in (("fused", "2d"), ("2d", "3d"), ("fused", "3d"))]
view.score_combo.setCurrentIndex(0)
view.grey_check.setChecked(True)
view.shade_check.setChecked(True)
top = int(np.argmax(points.scores))
state.set_pointed(int(points.pixel_index[top]))
out["marked"] = view.marked_point == top
view.mode_combo.setCurrentText("rgb")
app.processEvents()
view.gl_view.grabFramebuffer().save(f"{shots}/cloud_view_rgb.png")
view.mode_combo.setCurrentText("score")
view.reset_camera(elevation=90.0)
app.processEvents()
state.set_pointed(-1)
where = view.screen_position(top)
picked = view.pick_at(where.x(), where.y())
out["picked_near"] = bool(picked >= 0 and np.linalg.norm(
    points.xyz[picked] - points.xyz[top]) < 0.002)
out["pointed_after_pick"] = state.pointed == int(points.pixel_index[picked])
app.processEvents()
view.grab().save(f"{shots}/cloud_view_widget.png")
# a decision cleared before this view hears that the result went (the app's signal order)
errors = []
sys.excepthook = lambda kind, value, tb: errors.append(repr(value))
state.result = None
state.set_decision(None)
app.processEvents()
out["cleared_result_errors"] = errors
out["cleared_result_message"] = view.stack.currentWidget() is view.message
state.set_result(result)
state.set_decision(decision)
result.points[index] = None
state.set_current(-1)
state.set_current(index)
out["message_without_points"] = view.stack.currentWidget() is view.message
out["message"] = view.message.text()
view.gl_view.report_failure(RuntimeError("GLError 1282 invalid operation"))  # a broken driver
for _ in range(3):
    app.processEvents()
out["failure_message"] = view.message.text()
out["failure_shown"] = view.stack.currentWidget() is view.message and view.controls.isHidden()
print("RESULT" + json.dumps(out))
"""


def test_cloud_view_renders_and_links(scored_line, xvfb_display, tmp_path):
    _, result = scored_line
    pickled = tmp_path / "result.pkl"
    pickled.write_bytes(pickle.dumps(result))
    SHOTS.mkdir(parents=True, exist_ok=True)
    out = run_on_display(xvfb_display, _SCRIPT, str(pickled), str(SHOTS))
    assert out["problem"] is None
    assert out["message_without_sample"]
    assert out["has_points"] and out["n_colours"] == out["n_points"]
    assert out["choices"] == ["fused", "2d", "3d"]
    assert out["bar_levels"] == pytest.approx(
        heatmap_levels(result.maps, decide(result).pixel.value)
    )
    assert out["drawn_fraction"] > 0.05, "the point cloud was not rendered"
    assert out["greyed"] == out["below_cut"] > 0
    assert out["greyed"] < out["n_points"]  # the scratch itself stays coloured
    assert all(out["values_match"].values()), out["values_match"]
    assert all(out["colours_differ"]), "the score choice did not change the colours"
    assert out["marked"]
    assert out["picked_near"] and out["pointed_after_pick"]
    assert out["cleared_result_errors"] == [] and out["cleared_result_message"]
    assert out["message_without_points"] and "no 3D points" in out["message"]
    assert out["failure_shown"] and "GLError 1282" in out["failure_message"]

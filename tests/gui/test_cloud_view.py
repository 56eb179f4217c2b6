"""CloudView: colours, greying and pixel <-> point logic without GL; rendering under Xvfb.

The rendering test runs in a subprocess with its own Xvfb display and ``QT_QPA_PLATFORM=xcb``
(tests/gui/xvfb.py), because the Qt platform of this process is fixed (offscreen) once the first
widget exists.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest

from musc_gui.views.cloud_view import (
    GREY,
    display_coords,
    grey_below,
    pick_point,
    pixel_of_point,
    point_at_pixel,
    point_levels,
    project_points,
    rgb_colors,
    score_colors,
)
from tests.gui.xvfb import run_on_display

SHOTS = Path(os.environ.get("MUSC_GUI_SHOTS", "/tmp/gui_shots"))


def test_display_coords_is_a_rotation():
    xyz = np.array([[0.0, 0.0, 1.0], [1.0, 2.0, 1.5]], dtype=np.float32)
    pos = display_coords(xyz)
    np.testing.assert_allclose(pos.mean(axis=0), 0.0, atol=1e-7)
    # x kept, image-down y becomes display -y, nearer to the sensor (smaller z) is higher
    np.testing.assert_allclose(pos[1] - pos[0], [1.0, -2.0, -0.5])


def test_colours_and_greying():
    cmap = pg.colormap.get("inferno")
    scores = np.array([0.0, 0.5, 1.0, 2.0], dtype=np.float32)
    colours = score_colors(scores, (0.0, 1.0), cmap)
    assert colours.shape == (4, 4) and colours.dtype == np.float32
    np.testing.assert_allclose(colours[2], colours[3])  # clipped to the top level
    assert colours[2, :3].sum() > colours[0, :3].sum()  # inferno: bright = anomalous
    greyed = grey_below(colours, scores, 0.75)
    np.testing.assert_allclose(greyed[:2], [GREY, GREY])
    np.testing.assert_allclose(greyed[2:], colours[2:])
    assert not np.allclose(colours[0], GREY)  # input not modified


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


# ---- the widget under a real X server --------------------------------------------------
_SCRIPT = r"""
import json, pickle, sys
import numpy as np
from PySide6.QtWidgets import QApplication
app = QApplication([])
from musc_gui.state import AppState
from musc_gui.views.cloud_view import CloudView, point_at_pixel
result = pickle.load(open(sys.argv[1], "rb"))
shots = sys.argv[2]
out = {}
state = AppState()
view = CloudView(state)
view.resize(800, 600)
view.show()
state.set_result(result)
out["message_without_sample"] = view.stack.currentWidget() is view.message
index = next(i for i, s in enumerate(result.samples) if s.defect_type == "bump")
state.set_current(index)
points = result.points[index]
for _ in range(5):
    app.processEvents()
out["has_points"] = view.has_points
out["n_colours"] = len(view.colors)
out["n_points"] = len(points.xyz)
image = view.gl_view.grabFramebuffer()
image.save(f"{shots}/cloud_view_score.png")
rgb = image.convertToFormat(image.Format.Format_RGB888)
arr = np.frombuffer(rgb.constBits(), np.uint8).reshape(rgb.height(), rgb.bytesPerLine())
arr = arr[:, : rgb.width() * 3].reshape(rgb.height(), rgb.width(), 3)
background = arr[2, 2].astype(int)
out["drawn_fraction"] = float((np.abs(arr.astype(int) - background).sum(axis=2) > 30).mean())
top = int(np.argmax(points.scores))
state.set_pointed(int(points.pixel_index[top]))
out["marked"] = view.marked_point == top
view.lower_spin.setValue(float(np.median(points.scores)))
out["greyed"] = int(np.all(view.colors == np.array([0.55, 0.55, 0.55, 1.0], np.float32),
                           axis=1).sum())
out["below_median"] = int((points.scores < view.lower_spin.value()).sum())  # 4 decimals
view.mode_combo.setCurrentText("rgb")
view.lower_spin.setValue(view.lower_spin.minimum())
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
none_index = index
result.points[none_index] = None
state.set_current(-1)
state.set_current(none_index)
out["message_without_points"] = view.stack.currentWidget() is view.message
out["message"] = view.message.text()
print("RESULT" + json.dumps(out))
"""


def test_cloud_view_renders_and_links(scored_line, xvfb_display, tmp_path):
    _, result = scored_line
    pickled = tmp_path / "result.pkl"
    pickled.write_bytes(pickle.dumps(result))
    SHOTS.mkdir(parents=True, exist_ok=True)
    out = run_on_display(xvfb_display, _SCRIPT, str(pickled), str(SHOTS))
    assert out["message_without_sample"]
    assert out["has_points"] and out["n_colours"] == out["n_points"]
    assert out["drawn_fraction"] > 0.05, "the point cloud was not rendered"
    assert out["marked"]
    assert out["greyed"] == out["below_median"] > 0
    assert out["picked_near"] and out["pointed_after_pick"]
    assert out["message_without_points"] and "no 3D points" in out["message"]

"""File → Export report from the main window, and ``musc-gui --demo``.

The 3D snapshots of the report are checked twice: with a stand-in for the OpenGL widget
(offscreen, the capture logic) and with the real pyqtgraph.opengl view under Xvfb (the pictures).
"""

from __future__ import annotations

import os
import pickle
from html.parser import HTMLParser
from pathlib import Path

from musc_gui.main_window import MainWindow
from musc_gui.report_actions import export_to
from tests.gui.xvfb import run_on_display

SHOTS = Path(os.environ.get("MUSC_GUI_SHOTS", "/tmp/gui_shots"))


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _window_with_result(qtbot, scored_line) -> MainWindow:
    session, result = scored_line
    window = MainWindow()
    qtbot.addWidget(window)
    window.errors = []
    window.show_error = window.errors.append
    window.state.dataset = session.dataset
    window.state.set_threshold(float(sorted(result.image_scores)[-4]))  # the top 4 fail
    window.state.set_result(result)
    return window


def test_export_writes_a_report_naming_each_failing_part(qtbot, scored_line, tmp_path: Path):
    window = _window_with_result(qtbot, scored_line)
    assert window.export_action.isEnabled()
    written = export_to(window, tmp_path / "report")
    assert written and not window.errors
    result = scored_line[1]
    relative = {p.relative_to(tmp_path / "report").as_posix() for p in written}
    assert {"report.pdf", "report.html", "report.csv", "report.json"} <= relative
    assert {f"masks/{name}.png" for name in result.names} <= relative
    assert any(name.startswith("ply/") and name.endswith(".ply") for name in relative)
    html = next(p for p in written if p.suffix == ".html")
    parser = _Text()
    parser.feed(html.read_text())
    text = " ".join(parser.text)
    for index in result.ranking()[:4]:
        assert result.samples[index].name in text
    pdf = next(p for p in written if p.suffix == ".pdf")
    assert pdf.read_bytes().startswith(b"%PDF")


def test_export_keeps_existing_files_when_the_user_says_no(qtbot, scored_line, tmp_path: Path):
    window = _window_with_result(qtbot, scored_line)
    first = export_to(window, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in first}
    assert export_to(window, tmp_path, ask_overwrite=lambda paths: False) is None
    assert {p: p.stat().st_mtime_ns for p in first} == before


def test_export_to_an_unwritable_place_is_reported_once(qtbot, scored_line):
    window = _window_with_result(qtbot, scored_line)
    assert export_to(window, "/proc/musc-report") is None
    assert len(window.errors) == 1 and "/proc/musc-report" in window.errors[0]
    assert window.state.result is scored_line[1]  # nothing computed is lost


def test_demo_flag_writes_and_opens_the_bundled_line(monkeypatch, qtbot, tmp_path: Path):
    import musc_gui.__main__ as entry

    opened = []
    monkeypatch.setattr(entry.MainWindow, "open_folder", lambda self, f: opened.append(Path(f)))
    window = entry.build_window(["--demo", str(tmp_path)])
    qtbot.addWidget(window)
    assert opened == [tmp_path / "synthetic_line"]
    assert len(list((tmp_path / "synthetic_line" / "test").glob("*/xyz/*.tiff"))) == 27


def test_report_embeds_a_3d_snapshot_per_failing_part(qtbot, scored_line, tmp_path: Path):
    from PySide6.QtGui import QColor, QImage

    from musc_gui.report_actions import capture_3d_snapshots

    window = _window_with_result(qtbot, scored_line)
    shown = []

    class _FakeGL:  # stands in for the OpenGL widget, which needs a real display
        def grabFramebuffer(self):
            shown.append(window.state.current)
            image = QImage(8, 8, QImage.Format.Format_RGB32)
            image.fill(QColor("orange"))
            return image

    class _FakeCloudView:
        gl_view = _FakeGL()

    window.optional_views["3D"] = _FakeCloudView()
    window.state.set_current(0)
    snapshots = capture_3d_snapshots(window)
    result = scored_line[1]
    failing = [i for i in result.ranking() if result.image_scores[i] >= window.state.threshold]
    with_points = [result.samples[i].name for i in failing if result.points[i] is not None]
    assert sorted(snapshots) == sorted(with_points) and shown
    assert all(png.startswith(b"\x89PNG") for png in snapshots.values())
    assert window.state.current == 0  # the selection is restored
    written = export_to(window, tmp_path / "report")
    html = next(p for p in written if p.suffix == ".html").read_text()
    assert html.count("data:image/png;base64") >= 3 * len(with_points)


# ---- the same snapshots from the real OpenGL view, under Xvfb ---------------------------
_SNAPSHOT_SCRIPT = r"""
import json, pickle, sys
import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication
from scipy.spatial import cKDTree
app = QApplication([])
from musc_gui.main_window import MainWindow
from musc_gui.report_actions import capture_3d_snapshots
from musc_gui.views.cloud_view import point_levels, score_colors
result, dataset, threshold = pickle.load(open(sys.argv[1], "rb"))
shots = sys.argv[2]
window = MainWindow()
window.resize(1400, 860)
window.state.dataset = dataset
window.state.set_threshold(threshold)
window.state.set_result(result)
window.show()
window.state.set_current(0)
for _ in range(5):
    app.processEvents()
view = window.optional_views.get("3D")
out = {"has_3d_view": view is not None, "current_after": None, "parts": {}}
snapshots = capture_3d_snapshots(window)
out["current_after"] = window.state.current
# the colours the scored points must have: the colormap over the scores of all parts
levels = point_levels(result.points)
cmap = pg.colormap.get(view.colormap_combo.currentText() if view is not None else "inferno")
names = [s.name for s in result.samples]
for name, png in snapshots.items():
    image = QImage.fromData(png)
    image.save(f"{shots}/report_3d_{name}.png")
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(rgb.constBits(), np.uint8).reshape(rgb.height(), rgb.bytesPerLine())
    arr = arr[:, : rgb.width() * 3].reshape(rgb.height(), rgb.width(), 3).astype(np.float64)
    corners = arr[[0, 0, -1, -1], [0, -1, 0, -1]]
    background = np.median(corners, axis=0)
    drawn = np.abs(arr - background).sum(axis=2) > 30
    points = result.points[names.index(name)]
    palette = score_colors(points.scores, levels, cmap)[:, :3].astype(np.float64) * 255
    pixels = arr[drawn]
    near, _ = cKDTree(palette).query(pixels) if len(pixels) else (np.zeros(0), None)
    top = palette[points.scores >= np.quantile(points.scores, 0.99)]  # the most anomalous 1 %
    top_near, _ = cKDTree(top).query(pixels) if len(pixels) else (np.zeros(0), None)
    out["parts"][name] = {
        "size": [rgb.width(), rgb.height()],
        "background": background.tolist(),
        "drawn_fraction": float(drawn.mean()),
        "on_palette": float((near < 20).mean()) if len(pixels) else 0.0,
        "top_colour": top.mean(axis=0).round().tolist(),
        "top_colour_pixels": int((top_near < 20).sum()),
        "top_points": int(len(top)),
    }
print("RESULT" + json.dumps(out))
"""


def test_report_3d_snapshots_render_the_scored_cloud(scored_line, xvfb_display, tmp_path: Path):
    """capture_3d_snapshots with the real pyqtgraph.opengl view: each failing part's picture
    shows its point cloud (not a blank or near-black frame) in its score colours."""
    session, result = scored_line
    threshold = float(sorted(result.image_scores)[-4])  # the top 4 fail
    pickled = tmp_path / "result.pkl"
    pickled.write_bytes(pickle.dumps((result, session.dataset, threshold)))
    SHOTS.mkdir(parents=True, exist_ok=True)
    out = run_on_display(xvfb_display, _SNAPSHOT_SCRIPT, str(pickled), str(SHOTS))

    assert out["has_3d_view"], "the 3D view did not load under X (see the status bar message)"
    failing = [i for i in result.ranking() if result.image_scores[i] >= threshold]
    with_points = [result.samples[i].name for i in failing if result.points[i] is not None]
    assert len(with_points) >= 2 and sorted(out["parts"]) == sorted(with_points)
    assert out["current_after"] == 0
    for name, part in out["parts"].items():
        width, height = part["size"]
        assert width >= 200 and height >= 150, f"{name}: a {width}x{height} snapshot"
        assert sum(part["background"]) < 3 * 60, f"{name}: background {part['background']}"
        # a third of the frame or so is the part; a blank or black frame has almost nothing
        assert part["drawn_fraction"] > 0.05, f"{name}: blank snapshot ({part['drawn_fraction']})"
        # what is drawn is the score colormap of this part's points (not grey, white or RGB) ...
        assert part["on_palette"] > 0.9, f"{name}: {part['on_palette']:.2f} in score colours"
        # ... and its most anomalous point's colour is there to see
        assert part["top_colour_pixels"] >= 50, f"{name}: colour {part['top_colour']} not drawn"

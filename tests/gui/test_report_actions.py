"""File → Export report from the main window, and ``musc-gui --demo``.

The export runs on the controller's export worker; ``export_steps`` is replaced by a recorder
where the test is about the window's side (thread, progress, lot and operator). The 3D
snapshots of the report are checked twice: with a stand-in for the OpenGL widget (offscreen,
the capture logic) and with the real pyqtgraph.opengl view under Xvfb (the pictures).
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from pathlib import Path

import pytest

from engine.progress import Progress
from musc_gui.main_window import MainWindow
from musc_gui.report_actions import ExportDialog, start_export
from tests.gui.xvfb import run_on_display

SHOTS = Path(os.environ.get("MUSC_GUI_SHOTS", "/tmp/gui_shots"))
TIMEOUT = 120_000


@pytest.fixture
def window(make_window, fresh_session) -> MainWindow:
    """A window showing the scored line, its top 4 parts failing."""
    made = make_window()
    made.controller.adopt(fresh_session)
    scores = made.state.result.image_scores
    made.state.set_policy(made.state.policy.replace(image=float(sorted(scores)[-4])))
    return made


@pytest.fixture
def recorder(monkeypatch):
    """Replaces ``export_steps``: records its thread and arguments, yields three steps."""
    import musc_gui.export as export

    calls = []

    def export_steps(result, metrics, dataset, decision, meta, parent, *, snapshots=None):
        call = SimpleCall(threading.current_thread(), decision, meta, Path(parent), metrics)
        call.snapshots = dict(snapshots or {})
        calls.append(call)
        folder = Path(parent) / "report_1"
        folder.mkdir(parents=True)
        for step in range(3):
            time.sleep(0.05)
            yield Progress("build report", step + 1, 3)
        (folder / "report.pdf").write_bytes(b"%PDF")
        return [folder / "report.pdf", folder / "report.csv"]

    monkeypatch.setattr(export, "export_steps", export_steps, raising=False)
    return calls


class SimpleCall:
    def __init__(self, thread, decision, meta, parent, metrics) -> None:
        self.thread, self.decision, self.meta = thread, decision, meta
        self.parent, self.metrics = parent, metrics


def test_export_runs_off_the_gui_thread_with_progress(qtbot, window, recorder, tmp_path):
    values = []
    window.progress.valueChanged.connect(values.append)
    shown = []
    window.controller.busy_changed.connect(lambda busy: shown.append(window.progress.isVisible()))
    with qtbot.waitSignal(window.controller.exported, timeout=TIMEOUT) as blocker:
        assert start_export(window, tmp_path, "L-42", "Ann")
    assert len(recorder) == 1 and recorder[0].thread is not threading.main_thread()
    call = recorder[0]
    assert call.decision is window.state.decision and call.parent == tmp_path
    assert (call.meta.lot, call.meta.operator) == ("L-42", "Ann") and "metrics" in call.metrics
    assert shown[0] is True and max(values) >= 999  # the bar showed the export's steps
    assert blocker.args[0][0].name == "report.pdf"
    qtbot.waitUntil(lambda: window.controller.idle, timeout=5000)
    assert window.progress.isHidden() and window.errors == []
    assert "Wrote 2 files to" in window.statusBar().currentMessage()
    assert str(tmp_path / "report_1") in window.statusBar().currentMessage()


def test_export_failure_is_shown_once_and_keeps_the_result(qtbot, window, monkeypatch, tmp_path):
    import musc_gui.export as export

    def broken(*args, **kwargs):
        yield Progress("build report", 0, 1)
        raise OSError(28, "No space left on device", str(tmp_path / "report_1"))

    monkeypatch.setattr(export, "export_steps", broken, raising=False)
    result = window.state.result
    with qtbot.waitSignal(window.controller.exporter.finished, timeout=TIMEOUT):
        start_export(window, tmp_path)
    assert len(window.errors) == 1 and "No space left" in window.errors[0]
    assert window.state.result is result  # nothing computed is lost


def test_export_dialog_remembers_folder_lot_and_operator(qtbot, settings, tmp_path):
    dialog = ExportDialog(settings)
    qtbot.addWidget(dialog)
    dialog.folder.setText(str(tmp_path))
    dialog.lot.setText(" L-7 ")
    dialog.operator.setText("Bo")
    dialog.accept()
    again = ExportDialog(settings)
    qtbot.addWidget(again)
    assert again.values() == (str(tmp_path), "L-7", "Bo")


def test_export_writes_a_report_folder_for_real(qtbot, window, tmp_path):
    """The real ``export_steps`` from the window's worker: a new folder with the PDF in it."""
    with qtbot.waitSignal(window.controller.exported, timeout=TIMEOUT) as blocker:
        start_export(window, tmp_path, "L-1", "Cy")
    written = blocker.args[0]
    names = {p.name for p in written}
    assert "report.pdf" in names and "report.html" in names
    pdf = next(p for p in written if p.name == "report.pdf")
    assert pdf.parent.parent == tmp_path and pdf.read_bytes().startswith(b"%PDF")
    html = next(p for p in written if p.name == "report.html").read_text()
    for index in window.state.result.ranking()[:4]:
        assert window.state.result.samples[index].name in html
    assert "L-1" in html and window.errors == []


def test_demo_flag_writes_and_opens_the_bundled_line(monkeypatch, qtbot, tmp_path: Path):
    import musc_gui.__main__ as entry

    opened = []
    monkeypatch.setattr(entry.MainWindow, "open_folder", lambda self, f: opened.append(Path(f)))
    window = entry.build_window(["--demo", str(tmp_path)])
    qtbot.addWidget(window)
    assert opened == [tmp_path / "synthetic_line"]
    assert len(list((tmp_path / "synthetic_line" / "test").glob("*/xyz/*.tiff"))) == 27


def test_report_embeds_a_3d_snapshot_per_failing_part(qtbot, window, recorder, tmp_path: Path):
    from PySide6.QtGui import QColor, QImage

    from musc_gui.report_actions import capture_3d_snapshots

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
    result = window.state.result
    failing = [i for i in result.ranking() if result.image_scores[i] >= window.state.threshold]
    with_points = [result.samples[i].name for i in failing if result.points[i] is not None]
    assert sorted(snapshots) == sorted(with_points) and shown
    assert all(png.startswith(b"\x89PNG") for png in snapshots.values())
    assert window.state.current == 0  # the selection is restored
    with qtbot.waitSignal(window.controller.exported, timeout=TIMEOUT):
        start_export(window, tmp_path)
    assert recorder and sorted(recorder[0].snapshots) == sorted(with_points)


# ---- the same snapshots from the real OpenGL view, under Xvfb ---------------------------
_SNAPSHOT_SCRIPT = r"""
import json, pickle, sys
import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication
from scipy.spatial import cKDTree
app = QApplication([])
from musc_gui.main_window import MainWindow
from musc_gui.report_actions import capture_3d_snapshots
result, dataset, threshold = pickle.load(open(sys.argv[1], "rb"))
shots = sys.argv[2]
from PySide6.QtCore import QSettings
from engine.decision import DecisionPolicy
settings = QSettings(sys.argv[1] + ".ini", QSettings.Format.IniFormat)
window = MainWindow(settings=settings)
window.resize(1400, 860)
window.state.set_dataset(dataset)
window.state.set_result(result)
window.state.set_policy(DecisionPolicy(image=threshold))
window.show()
window.state.set_current(0)
for _ in range(5):
    app.processEvents()
view = window.optional_views.get("3D")
out = {"has_3d_view": view is not None, "current_after": None, "parts": {}}
snapshots = capture_3d_snapshots(window)
out["current_after"] = window.state.current
# the colours each part's points must have: the ones the view gave them (score colormap above
# the pixel cut, grey below, lit by the surface normals), read back from the view per part
names = [s.name for s in result.samples]
for name, png in snapshots.items():
    window.state.set_current(names.index(name))
    app.processEvents()
    colours = np.asarray(view.colors, dtype=np.float64)
    image = QImage.fromData(png)
    image.save(f"{shots}/report_3d_{name}.png")
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(rgb.constBits(), np.uint8).reshape(rgb.height(), rgb.bytesPerLine())
    arr = arr[:, : rgb.width() * 3].reshape(rgb.height(), rgb.width(), 3).astype(np.float64)
    corners = arr[[0, 0, -1, -1], [0, -1, 0, -1]]
    background = np.median(corners, axis=0)
    drawn = np.abs(arr - background).sum(axis=2) > 30
    palette = colours[:, :3] * 255
    pixels = arr[drawn]
    near, _ = cKDTree(palette).query(pixels) if len(pixels) else (np.zeros(0), None)
    rgb_only = colours[:, :3]
    # coloured (not grey) points: the decision's defect pixels of this failing part
    hot = palette[np.ptp(rgb_only, axis=1) > 0.15]
    hot_near, _ = cKDTree(hot).query(pixels) if len(pixels) and len(hot) else (np.zeros(0), None)
    out["parts"][name] = {
        "size": [rgb.width(), rgb.height()],
        "background": background.tolist(),
        "drawn_fraction": float(drawn.mean()),
        "on_palette": float((near < 20).mean()) if len(pixels) else 0.0,
        "hot_points": int(len(hot)),
        "hot_pixels": int((hot_near < 20).sum()),
    }
window.state.set_current(out["current_after"])
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
        # what is drawn is the colours the view gave this part's points (not white or RGB) ...
        assert part["on_palette"] > 0.9, f"{name}: {part['on_palette']:.2f} in its colours"
        # ... and where a failing part has defect points, their colour is there to see
        if part["hot_points"] >= 10:
            assert part["hot_pixels"] >= 30, f"{name}: its {part['hot_points']} coloured points"

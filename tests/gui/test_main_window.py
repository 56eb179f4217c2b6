"""MainWindow end to end on a small synthetic 2D+3D line (offscreen)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from engine.config import MuscConfig
from engine.data.synthetic import DEFECT_TYPES, DEFECT_TYPES_3D, write_synthetic_dataset
from engine.evaluation.thresholds import suggested_threshold
from musc_gui.main_window import MainWindow

TIMEOUT = 180_000
FAST = MuscConfig(backbone="efficientnet_lite0", backbone_3d="fpfh", num_groups=256)


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "line"
    return write_synthetic_dataset(root, n_good=6, n_per_defect=1, seed=3, with_xyz=True,
                                   defects=DEFECT_TYPES + DEFECT_TYPES_3D)  # fmt: skip


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(FAST, settings=settings)
    win.errors = []
    win.show_error = win.errors.append
    qtbot.addWidget(win)
    win.show()
    yield win
    win.runner.cancel()
    win.runner.wait()


def _wait_idle(qtbot, win):
    qtbot.waitUntil(lambda: not win.runner.running, timeout=TIMEOUT)


def test_open_scores_ranks_and_rescores_live(qtbot, window, demo_folder, tmp_path):
    with qtbot.waitSignal(window.state.result_changed, timeout=TIMEOUT,
                          check_params_cb=lambda r: r is not None):  # fmt: skip
        assert window.open_folder(demo_folder)
    _wait_idle(qtbot, window)
    result = window.state.result
    assert window.errors == []
    assert len(result.samples) == len(window.state.dataset.samples)
    top = [result.samples[i].label for i in window.ranked.visible_samples()[:3]]
    assert sum(top) >= 2  # defective parts rank first
    # the first result gets the engine's suggested pass/fail threshold (max-F1: all labelled)
    suggested, _how = suggested_threshold(result.image_scores, result.labels)
    assert result.image_scores.min() < suggested < result.image_scores.max()
    assert window.state.threshold == pytest.approx(suggested, abs=1e-6)
    assert window.state.current == int(result.ranking()[0])
    assert "Samples" in window.summary.plain_text()
    assert window.recent_folders()[0].endswith("line")
    window.grab().save(str(tmp_path / "main_window.png"))

    cache = dict(window.session._cache)
    extracts = []
    backbone = window.session.backbone
    original = backbone.extract
    backbone.extract = lambda *a, **k: extracts.append(1) or original(*a, **k)
    before = result.image_scores.copy()
    editor = window.parameters.editors["x_percent"]
    editor.slider.setValue(50)  # X% = 0.1 + 99.9 * 0.05 = 5.095, shown as 5.09; synchronous
    after = window.state.result
    assert after is not result and after.config.x_percent == pytest.approx(5.09)
    assert not np.allclose(before, after.image_scores)
    assert extracts == []
    assert all(window.session._cache[k] is v for k, v in cache.items())
    # how fast this is, is measured by bench/bench_gui.py, not asserted here


def test_cancel_mid_run_keeps_window_usable(qtbot, window, demo_folder):
    window.runner.yielded.connect(lambda e: e.stage == "extract 2D" and window.cancel())
    with qtbot.waitSignal(window.runner.aborted, timeout=TIMEOUT):
        window.open_folder(demo_folder)
    _wait_idle(qtbot, window)
    assert window.state.result is None and window.errors == []
    assert window.rerun_action.isEnabled() and window.progress.isHidden()
    window.runner.yielded.disconnect()
    with qtbot.waitSignal(window.runner.returned, timeout=TIMEOUT):
        window.rerun_action.trigger()
    _wait_idle(qtbot, window)
    assert window.state.result is not None


def test_apply_expensive_change_keeps_2d_features(qtbot, window, demo_folder):
    with qtbot.waitSignal(window.runner.returned, timeout=TIMEOUT):
        window.open_folder(demo_folder)
    _wait_idle(qtbot, window)
    tokens = window.session._cache["extract 2D"]
    window.parameters.editors["c_thr"].widget.setValue(0.03)
    with qtbot.waitSignal(window.runner.returned, timeout=TIMEOUT):
        window.parameters.apply()
    _wait_idle(qtbot, window)
    assert window.session.config.c_thr == pytest.approx(0.03)
    assert window.session._cache["extract 2D"] is tokens


def test_bad_folder_shows_one_error(window, tmp_path):
    assert not window.open_folder(tmp_path / "missing")
    assert len(window.errors) == 1 and "missing" in window.errors[0]


def test_engine_error_reaches_the_user_once(qtbot, window, tmp_path):
    from PIL import Image

    folder = tmp_path / "two"
    folder.mkdir()
    Image.new("RGB", (64, 64)).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    window.state.config = MuscConfig(modality="2d", backbone="efficientnet_lite0")
    opened = window.open_folder(folder)
    if opened:
        _wait_idle(qtbot, window)
    assert len(window.errors) == 1
    assert "two" in window.errors[0]


def test_add_view_replaces_start_page(window):
    from PySide6.QtWidgets import QLabel

    window.add_view("Extra", QLabel("x"))
    names = [window.views.tabText(i) for i in range(window.views.count())]
    assert "Extra" in names and "Start" not in names


def test_main_entry_point(monkeypatch, qtbot, demo_folder, tmp_path):
    import musc_gui.__main__ as entry

    opened = []
    monkeypatch.setattr(entry.MainWindow, "open_folder", lambda self, f: opened.append(f))
    monkeypatch.setattr(entry.QApplication, "exec", lambda self: 0)
    assert entry.main(["musc-gui", str(demo_folder)]) == 0
    assert opened == [str(demo_folder)]

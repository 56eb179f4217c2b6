"""The session cache from the window: reopening and Apply reuse a cached session."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSettings

from engine.config import MuscConfig
from engine.data.synthetic import DEFECT_TYPES, DEFECT_TYPES_3D, write_synthetic_dataset
from musc_gui.main_window import MainWindow

FAST = MuscConfig(backbone="efficientnet_lite0", backbone_3d="fpfh", num_groups=256)
TIMEOUT = 120_000


def _window(qtbot, tmp_path) -> MainWindow:
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(FAST, settings=settings)
    win.errors = []
    win.show_error = win.errors.append
    qtbot.addWidget(win)
    return win


def test_reopening_a_scored_folder_restores_without_a_run(qtbot, tmp_path, session_cache_dir):
    defects = DEFECT_TYPES + DEFECT_TYPES_3D
    folder = write_synthetic_dataset(tmp_path / "line", n_good=6, n_per_defect=1, seed=5,
                                     with_xyz=True, defects=defects)  # fmt: skip
    first = _window(qtbot, tmp_path)
    assert first.open_folder(folder)
    assert first.runner.running
    qtbot.waitUntil(lambda: first.controller.idle and first.state.result is not None,
                    timeout=TIMEOUT)  # fmt: skip
    assert first.errors == []
    assert list(session_cache_dir.glob("sessions/*.h5"))  # saved by the worker

    second = _window(qtbot, tmp_path)
    assert second.open_folder(folder)
    assert not second.runner.running
    result = second.state.result
    assert result is not None and second.session.backbone is None
    np.testing.assert_allclose(result.image_scores, first.state.result.image_scores, atol=1e-6)
    assert "from cache" in second.statusBar().currentMessage()
    assert second.rerun_action.isEnabled() and second.errors == []
    # how fast the restore is, is measured by bench/bench_gui.py, not asserted here

    with qtbot.waitSignal(second.state.result_changed, timeout=TIMEOUT):
        second.live_rescore({"x_percent": 20.0})  # the restored session re-scores at once
    assert second.state.result is not result and second.state.result.config.x_percent == 20.0


def test_apply_reuses_a_cached_session_instead_of_computing(qtbot, tmp_path, session_cache_dir):
    folder = write_synthetic_dataset(tmp_path / "line", n_good=6, n_per_defect=1, seed=6)
    first = _window(qtbot, tmp_path)
    first.open_folder(folder)
    qtbot.waitUntil(lambda: first.controller.idle and first.state.result is not None,
                    timeout=TIMEOUT)  # fmt: skip
    changed = first.state.config.replace(subsets=2)
    with qtbot.waitSignal(first.controller.ran, timeout=TIMEOUT):
        first.apply_config(changed)  # computed, and cached under the new config
    qtbot.waitUntil(lambda: first.controller.idle, timeout=TIMEOUT)
    scores = first.state.result.image_scores.copy()

    second = _window(qtbot, tmp_path)
    second.open_folder(folder)  # a hit: the first run's session
    stages = []
    second.runner.yielded.connect(lambda event: stages.append(event.stage))
    with qtbot.waitSignal(second.controller.ran, timeout=TIMEOUT):
        second.apply_config(changed)
    qtbot.waitUntil(lambda: second.controller.idle, timeout=TIMEOUT)
    assert second.session is not first.session and second.session.backbone is None
    assert "mutual scoring 2D" not in stages, f"Apply recomputed although cached: {stages}"
    np.testing.assert_allclose(second.state.result.image_scores, scores, atol=1e-6)
    assert second.errors == [] and first.errors == []

"""Reopening a scored folder restores its session from the on-disk cache without a run."""

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
    qtbot.waitUntil(lambda: not first.runner.running and first.state.result is not None,
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

    second.live_rescore({"x_percent": 20.0})  # the restored session re-scores at once
    assert second.state.result is not result and not second.runner.running

"""Shared GUI fixtures: offscreen Qt and a small scored synthetic line."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.synthetic import DEFECT_TYPES, DEFECT_TYPES_3D, write_synthetic_dataset
from engine.progress import run_to_completion
from engine.session.session import InspectionSession
from tests.gui import xvfb


@pytest.fixture(scope="session")
def scored_line(tmp_path_factory):
    """(session, result) of a small synthetic line with XYZ, scored in 2D+3D offline."""
    root = tmp_path_factory.mktemp("gui") / "line"
    write_synthetic_dataset(root, n_good=6, n_per_defect=1, seed=2, with_xyz=True,
                            defects=DEFECT_TYPES + DEFECT_TYPES_3D)  # fmt: skip
    config = MuscConfig(backbone="efficientnet_lite0", backbone_3d="fpfh", num_groups=256)
    session = InspectionSession(discover_dataset(root), config)
    return session, run_to_completion(session.run())


@pytest.fixture(autouse=True)
def session_cache_dir(tmp_path, monkeypatch):
    """Every GUI test gets its own empty session cache (no hits across tests, no ~/.cache)."""
    monkeypatch.setenv("MUSC_CACHE_DIR", str(tmp_path / "musc-cache"))
    return tmp_path / "musc-cache"


@pytest.fixture(scope="session")
def xvfb_display():
    """A private Xvfb display for OpenGL rendering tests (see tests/gui/xvfb.py)."""
    yield from xvfb.xvfb_display()


FAST = MuscConfig(backbone="efficientnet_lite0", backbone_3d="fpfh", num_groups=256)


@pytest.fixture
def fast_config():
    """Offline backbones and few 3D groups: a window scores a small line in seconds."""
    return FAST


@pytest.fixture
def settings(tmp_path):
    """A private QSettings file (the user's real settings are never touched)."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, settings):
    """Builds shown MainWindows on the private settings; errors are collected in ``.errors``."""
    from musc_gui.main_window import MainWindow

    made = []

    def make(config=FAST):
        window = MainWindow(config, settings=settings)
        window.errors = []
        window.show_error = window.errors.append
        qtbot.addWidget(window)
        window.show()
        made.append(window)
        return window

    yield make
    for window in made:
        window.controller.shutdown()


@pytest.fixture
def fresh_session(scored_line):
    """A scored session of the shared line with its own config (safe to re-score and change)."""
    session, _ = scored_line
    copy = InspectionSession.from_snapshot(session.dataset, session.snapshot())
    copy.rescore()
    return copy


@pytest.fixture
def wait_idle(qtbot):
    """Waits until a window's controller runs nothing and has nothing pending."""

    def wait(window, timeout=180_000):
        qtbot.waitUntil(lambda: window.controller.idle, timeout=timeout)

    return wait

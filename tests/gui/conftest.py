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

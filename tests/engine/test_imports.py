"""The engine is pure compute: importing it must not load the GUI stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_engine_imports_without_qt() -> None:
    code = (
        "import sys, engine, engine.cli, engine.session.session, engine.outputs.export\n"
        "import engine.evaluation.metrics\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph')]\n"
        "print(','.join(bad))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == ""

"""Regenerate the README screenshots: the window on the demo with the 2D and 3D views.

Needs an X server for the OpenGL view, e.g.:
    Xvfb :95 -screen 0 1600x1000x24 & DISPLAY=:95 QT_QPA_PLATFORM=xcb \\
        .venv/bin/python docs/make_screenshots.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine.data.demo import write_demo_dataset  # noqa: E402
from musc_gui.main_window import MainWindow  # noqa: E402

OUT = Path(__file__).resolve().parent / "screenshots"


def _wait(app: QApplication, condition, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the demo did not finish scoring")
        app.processEvents()
        time.sleep(0.02)


def main() -> None:
    """Score the demo in the window and save one screenshot per central view."""
    app = QApplication.instance() or QApplication(sys.argv)
    window = MainWindow()
    window.resize(1500, 900)
    window.show()
    with tempfile.TemporaryDirectory() as scratch:
        window.open_folder(write_demo_dataset(scratch))
        _wait(app, lambda: window.state.result is not None and not window.runner.running)
        OUT.mkdir(parents=True, exist_ok=True)
        for index in range(window.views.count()):
            window.views.setCurrentIndex(index)
            name = window.views.tabText(index).lower()
            if name == "3d":  # show a part whose defect only the point map sees
                result = window.state.result
                dents = [i for i in result.ranking() if result.samples[i].defect_type == "bump"]
                window.state.set_current(int(dents[0]))
            for _ in range(20):
                app.processEvents()
                time.sleep(0.05)
            shot = window.grab().scaledToWidth(1000, Qt.TransformationMode.SmoothTransformation)
            shot.save(str(OUT / f"window_{name}.png"))
            print(OUT / f"window_{name}.png")
    window.close()


if __name__ == "__main__":
    main()

"""Entry point: ``musc-gui [FOLDER]`` or ``python -m musc_gui [FOLDER]``."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from musc_gui.main_window import MainWindow


def main(argv: list[str] | None = None) -> int:
    """Start the application; opens ``argv[1]`` when given.

    Returns:
        The Qt event loop's exit code.
    """
    argv = list(sys.argv if argv is None else argv)
    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName("MuSc Inspector")
    app.setOrganizationName("MuSc")
    window = MainWindow()
    window.show()
    if len(argv) > 1:
        window.open_folder(argv[1])
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())

"""Entry point: ``musc-gui [FOLDER]``, ``musc-gui --demo [DIR]`` or ``python -m musc_gui``."""

from __future__ import annotations

import argparse
import sys

from PySide6.QtWidgets import QApplication

from musc_gui.main_window import MainWindow


def build_window(argv: list[str]) -> MainWindow:
    """Create the window and open what the command line names (a folder, or the demo)."""
    parser = argparse.ArgumentParser(prog="musc-gui", description="MuSc Inspector")
    parser.add_argument("folder", nargs="?", help="dataset folder to open and score")
    parser.add_argument(
        "--demo", nargs="?", const="out/demo", metavar="DIR",
        help="write the bundled synthetic line into DIR (default out/demo) and open it",
    )  # fmt: skip
    args = parser.parse_args(argv)
    window = MainWindow()
    window.show()
    if args.demo:
        from engine.data.demo import write_demo_dataset

        window.open_folder(write_demo_dataset(args.demo))
    elif args.folder:
        window.open_folder(args.folder)
    return window


def main(argv: list[str] | None = None) -> int:
    """Start the application.

    Returns:
        The Qt event loop's exit code.
    """
    argv = list(sys.argv if argv is None else argv)
    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName("MuSc Inspector")
    app.setOrganizationName("MuSc")
    window = build_window(argv[1:])  # noqa: F841 - kept alive by this frame while the app runs
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())

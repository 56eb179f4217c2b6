"""File → Export report: folder dialog, overwrite question, errors shown once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu

from engine.errors import MuscError
from musc_gui.export import export_report

if TYPE_CHECKING:
    from musc_gui.main_window import MainWindow


def export_to(
    window: MainWindow,
    folder: str | Path,
    ask_overwrite: Callable[[list[Path]], bool] | None = None,
) -> list[Path] | None:
    """Write the defect report of the current result into ``folder``.

    Returns:
        The written files; None when the user kept existing files or the export failed (the
        failure is shown once through ``window.show_error``, the results stay in the window).
    """
    try:
        written = export_report(window, window.state, folder, ask_overwrite=ask_overwrite)
    except (MuscError, OSError) as error:
        window.show_error(f"Could not export the report to {folder}: {error}")
        return None
    if written is None:
        window.statusBar().showMessage("Export cancelled; existing files were kept", 8000)
    else:
        window.statusBar().showMessage(f"Wrote {len(written)} files to {folder}", 10000)
    return written


def install_export_action(window: MainWindow, menu: QMenu) -> QAction:
    """Add "Export report…" (Ctrl+E) to ``menu``; enabled while a result is shown."""
    action = QAction("&Export report…", window, shortcut=QKeySequence("Ctrl+E"))
    action.setEnabled(False)

    def choose_and_export() -> None:
        folder = QFileDialog.getExistingDirectory(window, "Export the defect report to")
        if folder:
            export_to(window, folder)

    action.triggered.connect(choose_and_export)
    window.state.result_changed.connect(lambda result: action.setEnabled(result is not None))
    menu.addAction(action)
    return action

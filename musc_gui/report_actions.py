"""File → Export report: folder dialog, overwrite question, errors shown once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QBuffer, QIODevice
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu

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
        snapshots = capture_3d_snapshots(window)
        written = export_report(
            window, window.state, folder, ask_overwrite=ask_overwrite, snapshots=snapshots
        )
    except (MuscError, OSError) as error:
        window.show_error(f"Could not export the report to {folder}: {error}")
        return None
    if written is None:
        window.statusBar().showMessage("Export cancelled; existing files were kept", 8000)
    else:
        window.statusBar().showMessage(f"Wrote {len(written)} files to {folder}", 10000)
    return written


def capture_3d_snapshots(window: MainWindow) -> dict[str, bytes]:
    """PNG of the 3D view for every failing part with XYZ, keyed by sample name.

    Renders each part in the window's 3D view in turn (then restores the selection). Without a
    working OpenGL view (e.g. offscreen) the report simply has no 3D pictures.
    """
    view = getattr(window, "optional_views", {}).get("3D")
    result, state = window.state.result, window.state
    if view is None or result is None or not hasattr(view, "gl_view"):
        return {}
    previous, snapshots = state.current, {}
    try:
        for index in result.ranking():
            if result.image_scores[index] < state.threshold:
                break  # ranking is worst first: the rest pass
            if not result.points or result.points[index] is None:
                continue
            state.set_current(int(index))
            QApplication.processEvents()
            image = view.gl_view.grabFramebuffer()
            if image.isNull():
                continue
            buffer = QBuffer()
            buffer.open(QIODevice.OpenModeFlag.WriteOnly)
            image.save(buffer, "PNG")
            snapshots[result.samples[index].name] = bytes(buffer.data())
    except RuntimeError:  # no GL context: leave the report without 3D pictures
        return {}
    finally:
        state.set_current(previous)
    return snapshots


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

"""File → Export report: a dialog (where, lot, operator), 3D snapshots, and the export job.

The export itself runs on the controller's export worker (:func:`export_job`): metrics, masks,
PLY and the PDF of a large batch take seconds to minutes, and the window stays usable meanwhile.
Only the 3D snapshots are taken first, in the GUI thread, because they need the OpenGL view.
Each export writes a new subfolder of the chosen folder (``musc_gui.export.export_steps``), so
nothing is ever overwritten and there is no overwrite question.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QBuffer, QIODevice, QSettings
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QWidget,
)

from engine.progress import Progress
from musc_gui.preferences import export_meta, remember_export_meta

if TYPE_CHECKING:
    from musc_gui.main_window import MainWindow

METRICS_STAGE = "metrics"
FOLDER_KEY = "export/folder"


def export_job(
    result: Any,
    dataset: Any,
    decision: Any,
    folder: Path,
    *,
    lot: str = "",
    operator: str = "",
    snapshots: dict[str, bytes] | None = None,
) -> Callable:
    """The steps of one export, for a worker thread: metrics, then ``export_steps``.

    Raises:
        ImportError: The report modules lack ``ReportMeta`` or ``export_steps``.
    """
    from engine.evaluation.evaluate import evaluate_all
    from engine.outputs.report import ReportMeta
    from musc_gui.export import export_steps

    meta = ReportMeta(created=datetime.now().astimezone(), lot=lot, operator=operator)

    def steps() -> Generator[Progress, None, list[Path]]:
        yield Progress(METRICS_STAGE, 0, 1, "computing metrics")
        metrics = evaluate_all(result)
        yield Progress(METRICS_STAGE, 1, 1)
        return (yield from export_steps(result, metrics, dataset, decision, meta, folder,
                                        snapshots=snapshots))  # fmt: skip

    return steps


def written_folder(written: list[Path], parent: Path) -> Path:
    """The folder an export wrote into (the new subfolder of ``parent``)."""
    try:
        return Path(os.path.commonpath([str(p) for p in written])) if written else parent
    except ValueError:  # different drives
        return parent


class ExportDialog(QDialog):
    """Where to export, and the lot and operator printed on the report (both remembered)."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export the defect report")
        self.settings = settings
        lot, operator = export_meta(settings)
        self.folder = QLineEdit(str(settings.value(FOLDER_KEY, "") or Path.home()))
        browse = QPushButton("…")
        browse.setMaximumWidth(36)
        browse.setToolTip("Choose the folder; the report goes into a new subfolder of it")
        browse.clicked.connect(self._browse)
        self.lot, self.operator = QLineEdit(lot), QLineEdit(operator)
        self.lot.setPlaceholderText("e.g. L2024-117 (optional)")
        self.operator.setPlaceholderText("who inspected (optional)")
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.setMinimumWidth(460)
        form = QFormLayout(self)
        form.addRow(QLabel("The report (PDF, HTML, CSV, JSON, masks) goes into a new subfolder; "
                           "nothing is overwritten."))  # fmt: skip
        form.addRow("Folder", row)
        form.addRow("Lot", self.lot)
        form.addRow("Operator", self.operator)
        form.addRow(buttons)

    def _browse(self) -> None:
        where = self.folder.text()
        folder = QFileDialog.getExistingDirectory(self, "Export the report into", where)
        if folder:
            self.folder.setText(folder)

    def values(self) -> tuple[str, str, str]:
        """(folder, lot, operator) as typed, stripped."""
        return self.folder.text().strip(), self.lot.text().strip(), self.operator.text().strip()

    def accept(self) -> None:
        """Remember the folder, lot and operator, then close."""
        folder, lot, operator = self.values()
        if not folder:
            self.folder.setFocus()
            return
        self.settings.setValue(FOLDER_KEY, folder)
        remember_export_meta(self.settings, lot, operator)
        super().accept()


def start_export(window: MainWindow, folder: str | Path, lot: str = "", operator: str = "") -> bool:
    """Take the 3D snapshots, then export in the background; returns whether it started."""
    snapshots = capture_3d_snapshots(window)
    return window.controller.export(folder, lot=lot, operator=operator, snapshots=snapshots)


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

    def ask_and_export() -> None:
        dialog = ExportDialog(window.settings, window)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            start_export(window, *dialog.values())

    action.triggered.connect(ask_and_export)
    window.state.result_changed.connect(lambda result: action.setEnabled(result is not None))
    menu.addAction(action)
    return action

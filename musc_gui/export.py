"""Exporting the defect report from the GUI: the PDF (rendered by Qt) and the whole folder.

The engine writes HTML/CSV/JSON/masks/PLY (``engine.outputs.report``); only the PDF needs Qt,
so it is
rendered here from the same HTML. Images are registered as document resources rather than
inlined as data URIs, which ``QTextDocument`` does not load.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, QMarginsF, QUrl
from PySide6.QtGui import QImage, QPageLayout, QPageSize, QPdfWriter, QTextDocument
from PySide6.QtWidgets import QMessageBox, QWidget

from engine.evaluation.evaluate import evaluate_all
from engine.evaluation.thresholds import pixel_threshold
from engine.outputs.export import atomic_path
from engine.outputs.report import (
    ReportData,
    ReportExistsError,
    build_report,
    render_html,
    report_targets,
    write_report,
)
from musc_gui.state import AppState

PDF_NAME = "report.pdf"


def export_pdf(path: str | Path, data: ReportData, *, overwrite: bool = False) -> Path:
    """Render the report's HTML to an A4 PDF at ``path`` (atomically).

    Raises:
        ReportExistsError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ReportExistsError(
            f"{path}: file already exists. Choose another folder or allow overwriting."
        )
    document = QTextDocument()
    resources: dict[str, QImage] = {}

    def image_src(key: str, png: bytes) -> str:
        name = f"report://{key}"
        resources[name] = QImage.fromData(QByteArray(png), "PNG")
        return name

    html = render_html(data, image_src)
    for name, image in resources.items():
        document.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), image)
    document.setHtml(html)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        writer = QPdfWriter(str(tmp))
        writer.setTitle("MuSc defect report")
        writer.setPageLayout(
            QPageLayout(
                QPageSize(QPageSize.PageSizeId.A4),
                QPageLayout.Orientation.Portrait,
                QMarginsF(15, 15, 15, 15),
                QPageLayout.Unit.Millimeter,
            )
        )
        writer.setResolution(150)
        document.print_(writer)
        del writer  # flushes and closes the file before it is moved into place
    return path


def _ask_with_dialog(parent: QWidget | None) -> Callable[[list[Path]], bool]:
    def ask(existing: list[Path]) -> bool:
        shown = "\n".join(str(p) for p in existing[:5])
        more = f"\n... and {len(existing) - 5} more" if len(existing) > 5 else ""
        answer = QMessageBox.question(
            parent,
            "Overwrite report?",
            f"These files already exist and will be replaced:\n{shown}{more}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    return ask


def report_from_state(state: AppState, snapshots: dict[str, bytes] | None = None) -> ReportData:
    """The report of the state's current result, at its current threshold."""
    if state.result is None:
        raise ValueError("nothing to export: score a dataset first")
    result = state.result
    pixel_cut, pixel_how = pixel_threshold(result.maps)
    notes = {"pixel threshold": pixel_how}
    return build_report(result, evaluate_all(result), state.dataset, state.threshold,
                        pixel_cut, snapshots=snapshots, notes=notes)  # fmt: skip


def export_report(
    parent: QWidget | None,
    state: AppState,
    folder: str | Path,
    *,
    ask_overwrite: Callable[[list[Path]], bool] | None = None,
    snapshots: dict[str, bytes] | None = None,
) -> list[Path] | None:
    """Write HTML, PDF, CSV, JSON, masks and PLY of the current result into ``folder``.

    Args:
        parent: Parent of the overwrite question.
        state: The application state (result, dataset, threshold).
        folder: Target folder, created when missing.
        ask_overwrite: Called with the existing files; True replaces them. Default: a
            QMessageBox question (tests pass a callable so nothing blocks).
        snapshots: Optional 3D view PNGs per sample name.

    Returns:
        The written files, or None when the user declined to overwrite (nothing is written).
    """
    data = report_from_state(state, snapshots)
    folder = Path(folder)
    existing = [p for p in report_targets(folder, data) if p.exists()]
    if existing:
        ask = ask_overwrite or _ask_with_dialog(parent)
        if not ask(existing):
            return None
    written = write_report(folder, data, overwrite=True)
    written.append(export_pdf(folder / PDF_NAME, data, overwrite=True))
    return written

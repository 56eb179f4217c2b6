"""Exporting the defect report from the app: the whole folder, PDF included, on a worker thread.

The engine builds the report and writes HTML/CSV/JSON/masks/PLY (``engine.outputs.report``);
only the PDF needs Qt, so it is rendered here from the same HTML with ``QTextDocument``,
``QPdfWriter``, ``QPainter`` and ``QImage``, which may all be used outside the GUI thread
(``QPixmap`` and widgets may not), so :func:`export_steps` can run on a worker ``QThread``.

``QTextDocument`` ignores ``page-break-inside``, so the pages are laid out here: the document is
paginated at the PDF's body size, and every top-level table that would be split across a page
break but fits on one page (each failing part is such a table, its heading inside) is moved to
the next page. Pages are then painted one by one with a footer: report, date, page i of n.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QMarginsF, QPointF, QRectF, QSizeF, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QTextBlock,
    QTextCursor,
    QTextDocument,
    QTextFormat,
    QTextTable,
)

from engine.data.samples import DatasetIndex
from engine.decision import Decision, decide
from engine.evaluation.evaluate import evaluate_all
from engine.outputs.export import atomic_path
from engine.outputs.report import ReportData, ReportMeta, report_folder, report_steps, write_report
from engine.outputs.report_html import render_html
from engine.progress import Progress, run_to_completion
from engine.session.results import ScoreResult
from musc_gui.state import AppState

PDF_NAME = "report.pdf"
STAGE = "write report"
MARGIN_MM = 15.0
FOOTER_MM = 8.0  # reserved at the bottom of every page's body for the footer
LAYOUT_DPI = 96.0  # the HTML's pixel sizes are at this resolution (180 mm = 680 px)
PDF_DPI = 300


def _layout_device() -> QImage:
    """A paint device of exactly LAYOUT_DPI, so text and pictures keep their proportions on
    any screen (the default device follows the screen's dpi)."""
    device = QImage(1, 1, QImage.Format.Format_RGB32)
    dots_per_metre = round(LAYOUT_DPI / 0.0254)
    device.setDotsPerMeterX(dots_per_metre)
    device.setDotsPerMeterY(dots_per_metre)
    return device


def report_document(data: ReportData, body: QSizeF) -> tuple[QTextDocument, QImage]:
    """The report as a paginated ``QTextDocument`` of page size ``body`` (layout pixels).

    Returns:
        The document and its layout device, which must live as long as the document.
    """
    document = QTextDocument()
    device = _layout_device()
    document.documentLayout().setPaintDevice(device)
    resources: dict[str, QImage] = {}

    def image_src(_key: str, picture: bytes) -> str:
        name = f"report-image-{len(resources)}"
        resources[name] = QImage.fromData(QByteArray(picture))  # PNG or JPEG, by its header
        return name

    html = render_html(data, image_src)
    for name, image in resources.items():
        document.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), image)
    document.setPageSize(body)
    document.setHtml(html)
    keep_tables_together(document)
    return document, device


def _heading_before(document: QTextDocument, table: QTextTable) -> QTextBlock | None:
    """The heading right above ``table`` (skipping empty spacer paragraphs), if any."""
    # the block holding the position just before the table is the one right above it
    block = document.findBlock(table.firstPosition() - 1)
    while block.isValid() and not block.text().strip():
        block = block.previous()
    return block if block.isValid() and block.blockFormat().headingLevel() > 0 else None


def keep_tables_together(document: QTextDocument) -> int:
    """Move each top-level table that a page break would split, and that fits on a page, to the
    next page, with the heading right above it; a heading left at the foot of a page above its
    table moves down to it too (in document order, so each move is laid out before the next
    check).

    Returns:
        How many tables were moved.
    """
    page = document.pageSize().height()
    layout = document.documentLayout()
    always_before = QTextFormat.PageBreakFlag.PageBreak_AlwaysBefore
    moved = 0
    for frame in document.rootFrame().childFrames():
        if not isinstance(frame, QTextTable):
            continue
        rect = layout.frameBoundingRect(frame)
        heading = _heading_before(document, frame)
        split = int(rect.top() // page) != int((rect.bottom() - 1) // page)
        # Qt may push a whole table to the next page by itself, leaving its heading behind
        orphaned = heading is not None and int(
            layout.blockBoundingRect(heading).top() // page
        ) != int(rect.top() // page)
        if rect.height() > page or not (split or orphaned):
            continue
        if heading is not None:
            block_format = heading.blockFormat()
            block_format.setPageBreakPolicy(always_before)
            QTextCursor(heading).setBlockFormat(block_format)
        else:
            table_format = frame.format()
            table_format.setPageBreakPolicy(always_before)
            frame.setFormat(table_format)
        moved += 1
    return moved


def _footer(data: ReportData) -> str:
    meta = data.meta
    parts = [f"MuSc Inspector {meta.software_version}", "Defect report", data.category,
             f"{meta.created:%Y-%m-%d %H:%M}", f"lot {meta.lot}" if meta.lot else ""]  # fmt: skip
    return " · ".join(p for p in parts if p)


def export_pdf(path: str | Path, data: ReportData) -> Path:
    """Render the report to an A4 PDF at ``path`` (atomically), with page numbers."""
    path = Path(path)
    body_mm = QSizeF(210.0 - 2 * MARGIN_MM, 297.0 - 2 * MARGIN_MM - FOOTER_MM)
    to_px = LAYOUT_DPI / 25.4
    document, _device = report_document(data, body_mm * to_px)
    page = document.pageSize()
    pages = document.pageCount()
    scale = PDF_DPI / LAYOUT_DPI
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        writer = QPdfWriter(str(tmp))
        writer.setTitle(f"MuSc defect report {data.category}".strip())
        writer.setCreator(f"MuSc Inspector {data.meta.software_version}")
        writer.setResolution(PDF_DPI)
        margins = QMarginsF(MARGIN_MM, MARGIN_MM, MARGIN_MM, MARGIN_MM)
        writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4),
                                         QPageLayout.Orientation.Portrait, margins,
                                         QPageLayout.Unit.Millimeter))  # fmt: skip
        painter = QPainter(writer)
        font = QFont(painter.font())
        font.setPointSizeF(7.5)
        for index in range(pages):
            if index:
                writer.newPage()
            painter.save()
            painter.scale(scale, scale)
            painter.translate(0, -index * page.height())
            document.drawContents(painter, QRectF(QPointF(0, index * page.height()), page))
            painter.restore()
            # The footer in device pixels: a font set under the scale would be scaled twice.
            painter.setFont(font)
            painter.setPen(QColor(90, 90, 90))
            top = (page.height() + FOOTER_MM * to_px * 0.35) * scale
            box = QRectF(0, top, page.width() * scale, FOOTER_MM * to_px * 0.6 * scale)
            painter.drawLine(QPointF(0, top), QPointF(page.width() * scale, top))
            painter.drawText(box, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
                             _footer(data))  # fmt: skip
            painter.drawText(box, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom,
                             f"Page {index + 1} of {pages}")  # fmt: skip
        painter.end()
        del writer  # flushes and closes the file before it is moved into place
    return path


def export_steps(
    result: ScoreResult,
    metrics: dict[str, dict[str, float]],
    dataset: DatasetIndex | dict[str, Any] | None,
    decision: Decision,
    meta: ReportMeta,
    parent_folder: str | Path,
    *,
    snapshots: dict[str, bytes] | None = None,
) -> Generator[Progress, None, list[Path]]:
    """Build the report and write it, PDF included, into a new folder under ``parent_folder``.

    One progress event per part ("build report"), then one after the files ("write report");
    a cancelled or failed export removes its folder. Safe to run on a worker thread.

    Returns:
        The written files; the folder is their common parent (``report_folder``).
    """
    data = yield from report_steps(result, metrics, dataset, decision, meta, snapshots=snapshots)
    folder = report_folder(Path(parent_folder), data.category, meta.created)
    try:
        written = write_report(folder, data)
        yield Progress(STAGE, 1, 2, PDF_NAME)
        written.append(export_pdf(folder / PDF_NAME, data))
    except BaseException:  # also cancellation (GeneratorExit): no half-written report stays
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return written


def export_report(
    state: AppState,
    parent_folder: str | Path,
    *,
    meta: ReportMeta | None = None,
    snapshots: dict[str, bytes] | None = None,
) -> list[Path]:
    """:func:`export_steps` for the state's current result, run to its end in this thread.

    Uses the state's decision (or decides with its policy) and ``ReportMeta(now)`` by default.
    """
    if state.result is None:
        raise ValueError("nothing to export: score a dataset first")
    result = state.result
    decision = state.decision or decide(result, state.policy)
    meta = meta or ReportMeta(datetime.now())
    steps = export_steps(result, evaluate_all(result), state.dataset, decision, meta,
                         parent_folder, snapshots=snapshots)  # fmt: skip
    return run_to_completion(steps)

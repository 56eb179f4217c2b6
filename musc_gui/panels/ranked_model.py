"""The table behind the ranked list: one row per scored part, its verdict, mark and thumbnail.

:class:`RankedModel` reads ``AppState.result``, ``AppState.decision`` (fail when the score is at
or above the image cut; no verdict without a decision) and ``AppState.policy.reference`` (the
known-good marks); :class:`RankedFilter` sorts and filters it for the panel in ``ranked_list``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QPointF,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QImageReader, QPainter, QPen, QPixmap

from engine.session.results import ScoreResult
from musc_gui.state import AppState

# The verdict sits right after rank and score, so that it never scrolls out of a narrow panel;
# known-good parts carry a green check before their name (no column: the panel may be 320 px).
COLUMNS = ("Rank", "Score", "Verdict", "Image", "Name", "Type")
RANK, SCORE, VERDICT, THUMB, NAME, TYPE = range(len(COLUMNS))
KNOWN_GOOD_TIP = "known-good: part of the normal reference the cuts come from (G unmarks it)"
HEADER_TIPS = {
    VERDICT: "FAIL when the score is at or above the image cut of the decision in force",
    NAME: "A green check marks a known-good part (G or the context menu marks and unmarks)",
}
THUMB_SIZE = 40
NAME_MIN = 80  # px the name keeps before the type, then the thumbnail, columns are hidden
SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # numeric sort key
SAMPLE_ROLE = Qt.ItemDataRole.UserRole + 2  # index into result.samples
FAIL_COLOUR, PASS_COLOUR = QColor(200, 40, 40), QColor(30, 140, 60)
ANY_INDEX = QModelIndex | QPersistentModelIndex


def known_good_icon(size: int = 14) -> QPixmap:
    """A green disc with a white check: the known-good mark before a part's name."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(PASS_COLOUR)
    painter.drawEllipse(0, 0, size, size)
    painter.setPen(QPen(Qt.GlobalColor.white, size / 7))
    s = size / 14
    painter.drawPolyline([QPointF(3.5 * s, 7.5 * s), QPointF(6 * s, 10 * s),
                          QPointF(10.5 * s, 4.5 * s)])  # fmt: skip
    painter.end()
    return pixmap


class ThumbnailCache:
    """Small pixmaps of sample images, read on first request and kept by path."""

    def __init__(self, size: int = THUMB_SIZE) -> None:
        self.size = size
        self._cache: dict[Path, QPixmap] = {}

    def get(self, path: Path | None) -> QPixmap | None:
        """The thumbnail of ``path`` (an empty pixmap if it cannot be read), None without one."""
        if path is None:
            return None
        if path not in self._cache:
            self._cache[path] = self._load(path)
        return self._cache[path]

    def _load(self, path: Path) -> QPixmap:
        reader = QImageReader(str(path))
        original = reader.size()
        if original.isValid():  # decode at thumbnail size: fast even for large images
            reader.setScaledSize(original.scaled(self.size, self.size,
                                                 Qt.AspectRatioMode.KeepAspectRatio))  # fmt: skip
        image = reader.read()
        if image.isNull():  # formats Qt cannot read (16-bit TIFF, ...): the engine's reader
            try:
                from engine.data.readers import read_rgb

                rgb = np.ascontiguousarray(read_rgb(path))
                height, width = rgb.shape[:2]
                image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
                image = image.scaled(self.size, self.size, Qt.AspectRatioMode.KeepAspectRatio)
            except Exception:  # a thumbnail is optional; the name still shows
                return QPixmap()
        return QPixmap.fromImage(image)


class RankedModel(QAbstractTableModel):
    """One row per scored sample, in dataset order (the proxy sorts)."""

    def __init__(self, state: AppState, thumbnails: ThumbnailCache | None = None) -> None:
        super().__init__()
        self._state = state
        self._thumbnails = thumbnails or ThumbnailCache()
        self._result: ScoreResult | None = None
        self._ranks = np.zeros(0, dtype=int)
        self._known_icon: QPixmap | None = None  # made on first use (needs the application)

    def set_result(self, result: ScoreResult | None) -> None:
        """Show ``result`` (None clears the table)."""
        self.beginResetModel()
        self._result = result
        self._ranks = np.zeros(0, dtype=int)
        if result is not None:
            self._ranks = np.empty(len(result.samples), dtype=int)
            self._ranks[result.ranking()] = np.arange(1, len(result.samples) + 1)
        self.endResetModel()

    def columns_changed(self, *columns: int) -> None:
        """Repaint whole columns (verdicts after a new decision, marks after a new policy)."""
        for column in columns:
            if self.rowCount():
                self.dataChanged.emit(self.index(0, column),
                                      self.index(self.rowCount() - 1, column))  # fmt: skip

    def failed(self, row: int) -> bool | None:
        """Whether sample ``row`` fails the decision's image cut; None without a decision."""
        decision = self._state.decision
        if decision is None or self._result is None:
            return None
        return float(self._result.image_scores[row]) >= decision.image.value

    def known_good(self, row: int) -> bool:
        """Whether sample ``row`` is marked known-good (in ``state.policy.reference``)."""
        return self._result.samples[row].name in self._state.policy.reference

    def defect_type(self, row: int) -> str:
        """The sample's type ("good", "scratch", ...) or "" when unknown."""
        return self._result.samples[row].defect_type or ""

    def rowCount(self, parent: ANY_INDEX = QModelIndex()) -> int:  # noqa: B008
        """Number of scored samples."""
        return 0 if self._result is None or parent.isValid() else len(self._result.samples)

    def columnCount(self, parent: ANY_INDEX = QModelIndex()) -> int:  # noqa: B008
        """Number of columns."""
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        """Column titles and their tooltips."""
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(section)
        return None

    def data(self, index: ANY_INDEX, role: int = Qt.ItemDataRole.DisplayRole):
        """Cell contents; thumbnails are read only when a visible cell asks for them."""
        if not index.isValid() or self._result is None:
            return None
        row, column = index.row(), index.column()
        sample, score = self._result.samples[row], float(self._result.image_scores[row])
        if role == SAMPLE_ROLE:
            return row
        if role == SORT_ROLE:
            failed = self.failed(row)
            keys = {
                RANK: int(self._ranks[row]),
                THUMB: int(self._ranks[row]),
                NAME: sample.name,
                SCORE: score,
                TYPE: self.defect_type(row),
                VERDICT: -1 if failed is None else int(failed),
            }
            return keys[column]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, column, score)
        if role == Qt.ItemDataRole.DecorationRole and column == THUMB:
            return self._thumbnails.get(sample.rgb_path)
        if role == Qt.ItemDataRole.DecorationRole and column == NAME and self.known_good(row):
            self._known_icon = self._known_icon or known_good_icon()
            return self._known_icon
        if role == Qt.ItemDataRole.ForegroundRole and column == VERDICT:
            failed = self.failed(row)
            return None if failed is None else QBrush(FAIL_COLOUR if failed else PASS_COLOUR)
        if role == Qt.ItemDataRole.FontRole and column == VERDICT and self.failed(row):
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if column in (RANK, SCORE):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if column == VERDICT:
                return int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            where = str(sample.rgb_path or sample.xyz_path or sample.name)
            return f"{where}\n{KNOWN_GOOD_TIP}" if self.known_good(row) else where
        return None

    def _text(self, row: int, column: int, score: float) -> object:
        if column == RANK:
            return int(self._ranks[row])
        if column == SCORE:
            return f"{score:.4f}"
        if column == VERDICT:
            failed = self.failed(row)
            return "–" if failed is None else ("FAIL" if failed else "pass")
        if column == NAME:
            return self._result.samples[row].name
        if column == TYPE:
            return self.defect_type(row) or "-"
        return None


class RankedFilter(QSortFilterProxyModel):
    """Sorts by :data:`SORT_ROLE` and keeps rows matching "all", "fail", "pass" or a type."""

    def __init__(self) -> None:
        super().__init__()
        self.setSortRole(SORT_ROLE)
        self._mode = "all"

    def set_mode(self, mode: str) -> None:
        """ "all", "fail", "pass" or "type:<name>"."""
        self.beginFilterChange()
        self._mode = mode
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def refresh(self) -> None:
        """Re-apply the filter after the decision changed."""
        self.beginFilterChange()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent: ANY_INDEX) -> bool:
        """Whether ``row`` passes the current filter (no verdict: neither fail nor pass)."""
        model: RankedModel = self.sourceModel()
        if self._mode == "all":
            return True
        if self._mode in ("fail", "pass"):
            return model.failed(row) is (self._mode == "fail")
        return model.defect_type(row) == self._mode.removeprefix("type:")

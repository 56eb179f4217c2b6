"""Ranked list of scored parts: worst first, sortable, filterable, keyboard-driven.

The table model reads ``AppState.result`` and ``AppState.threshold``; selecting a row calls
``state.set_current`` and ``current_changed`` selects the row back (guarded against loops).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor, QImage, QImageReader, QKeyEvent, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.session.results import ScoreResult
from musc_gui.state import AppState

COLUMNS = ("Rank", "Image", "Name", "Score", "Type", "Verdict")
RANK, THUMB, NAME, SCORE, TYPE, VERDICT = range(len(COLUMNS))
THUMB_SIZE = 40
SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # numeric sort key
SAMPLE_ROLE = Qt.ItemDataRole.UserRole + 2  # index into result.samples
FAIL_COLOUR, PASS_COLOUR = QColor(200, 40, 40), QColor(30, 140, 60)
ANY_INDEX = QModelIndex | QPersistentModelIndex


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

    def set_result(self, result: ScoreResult | None) -> None:
        """Show ``result`` (None clears the table)."""
        self.beginResetModel()
        self._result = result
        self._ranks = np.zeros(0, dtype=int)
        if result is not None:
            self._ranks = np.empty(len(result.samples), dtype=int)
            self._ranks[result.ranking()] = np.arange(1, len(result.samples) + 1)
        self.endResetModel()

    def threshold_moved(self) -> None:
        """Repaint the verdict column after the threshold moved."""
        if self.rowCount():
            self.dataChanged.emit(self.index(0, VERDICT), self.index(self.rowCount() - 1, VERDICT))

    def failed(self, row: int) -> bool:
        """Whether sample ``row`` scores at or above the threshold."""
        return float(self._result.image_scores[row]) >= self._state.threshold

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
        """Column titles."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
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
            keys = {
                RANK: int(self._ranks[row]),
                THUMB: int(self._ranks[row]),
                NAME: sample.name,
                SCORE: score,
                TYPE: self.defect_type(row),
                VERDICT: int(self.failed(row)),
            }
            return keys[column]
        if role == Qt.ItemDataRole.DisplayRole:
            if column == RANK:
                return int(self._ranks[row])
            if column == NAME:
                return sample.name
            if column == SCORE:
                return f"{score:.4f}"
            if column == TYPE:
                return self.defect_type(row) or "-"
            if column == VERDICT:
                return "FAIL" if self.failed(row) else "pass"
        if role == Qt.ItemDataRole.DecorationRole and column == THUMB:
            return self._thumbnails.get(sample.rgb_path)
        if role == Qt.ItemDataRole.ForegroundRole and column == VERDICT:
            return QBrush(FAIL_COLOUR if self.failed(row) else PASS_COLOUR)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (RANK, SCORE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(sample.rgb_path or sample.xyz_path or sample.name)
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
        """Re-apply the filter after the threshold moved."""
        self.beginFilterChange()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent: ANY_INDEX) -> bool:
        """Whether ``row`` passes the current filter."""
        model: RankedModel = self.sourceModel()
        if self._mode == "all":
            return True
        if self._mode in ("fail", "pass"):
            return model.failed(row) == (self._mode == "fail")
        return model.defect_type(row) == self._mode.removeprefix("type:")


class RankedTableView(QTableView):
    """A table whose Home/End keys jump to the first/last row (not column)."""

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Home/End move between rows; everything else as usual."""
        key = event.key()
        if key in (Qt.Key.Key_Home, Qt.Key.Key_End) and self.model().rowCount():
            row = 0 if key == Qt.Key.Key_Home else self.model().rowCount() - 1
            flags = (QItemSelectionModel.SelectionFlag.ClearAndSelect
                     | QItemSelectionModel.SelectionFlag.Rows)  # fmt: skip
            index = self.model().index(row, max(self.currentIndex().column(), 0))
            self.selectionModel().setCurrentIndex(index, flags)
            self.scrollTo(index)
            return
        super().keyPressEvent(event)


class RankedListPanel(QWidget):
    """Table of parts, worst first, bound to an :class:`AppState`."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.model = RankedModel(state)
        self.proxy = RankedFilter()
        self.proxy.setSourceModel(self.model)
        self._syncing = False

        self.filter_combo = QComboBox()
        self.filter_combo.setToolTip("Show all parts, only failing/passing ones, or one type")
        self.count_label = QLabel()
        self.table = RankedTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMB_SIZE + 4)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.sortByColumn(SCORE, Qt.SortOrder.DescendingOrder)  # worst first

        top = QHBoxLayout()
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.filter_combo, 1)
        top.addWidget(self.count_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.table)

        self.filter_combo.currentIndexChanged.connect(self._filter_chosen)
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)
        state.result_changed.connect(self._result_changed)
        state.current_changed.connect(self.select_sample)
        state.threshold_changed.connect(self._threshold_changed)
        self._result_changed(state.result)

    # -- state -> view ------------------------------------------------------------------------

    def _result_changed(self, result: ScoreResult | None) -> None:
        self._syncing = True
        try:
            self._fill_filters(result)
            self.model.set_result(result)
        finally:
            self._syncing = False
        self.select_sample(self.state.current)
        self._update_count()

    def _fill_filters(self, result: ScoreResult | None) -> None:
        chosen = self.filter_combo.currentData() or "all"
        types = sorted({s.defect_type for s in result.samples if s.defect_type}) if result else []
        entries = [("All parts", "all"), ("Fail (score ≥ threshold)", "fail"),
                   ("Pass", "pass")] + [(f"Type: {t}", f"type:{t}") for t in types]  # fmt: skip
        if [self.filter_combo.itemData(i) for i in range(self.filter_combo.count())] == [
            data for _, data in entries
        ]:
            return
        self.filter_combo.blockSignals(True)
        self.filter_combo.clear()
        for text, data in entries:
            self.filter_combo.addItem(text, data)
        position = self.filter_combo.findData(chosen)
        self.filter_combo.setCurrentIndex(max(position, 0))
        self.filter_combo.blockSignals(False)
        self.proxy.set_mode(self.filter_combo.currentData())

    def _threshold_changed(self, _value: float) -> None:
        self.model.threshold_moved()
        self.proxy.refresh()
        self._update_count()

    def select_sample(self, sample: int) -> None:
        """Select (and scroll to) the row of ``sample``; -1 clears the selection."""
        selection = self.table.selectionModel()
        self._syncing = True
        try:
            if sample < 0 or sample >= self.model.rowCount():
                selection.clear()
                return
            row = self.proxy.mapFromSource(self.model.index(sample, 0))
            if not row.isValid():  # filtered out: keep the state, show nothing selected
                selection.clear()
                return
            if selection.currentIndex().row() != row.row():
                flags = (QItemSelectionModel.SelectionFlag.ClearAndSelect
                         | QItemSelectionModel.SelectionFlag.Rows)  # fmt: skip
                selection.setCurrentIndex(row, flags)
            self.table.scrollTo(row)
        finally:
            self._syncing = False

    def _update_count(self) -> None:
        result = self.state.result
        if result is None:
            self.count_label.setText("")
            return
        failed = int(np.sum(result.image_scores >= self.state.threshold))
        self.count_label.setText(f"{self.proxy.rowCount()} shown · {failed} fail")

    # -- view -> state ------------------------------------------------------------------------

    def _filter_chosen(self, _position: int) -> None:
        self.proxy.set_mode(self.filter_combo.currentData() or "all")
        self._update_count()
        self.select_sample(self.state.current)

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._syncing or not current.isValid():
            return
        self.state.set_current(int(self.proxy.data(current, SAMPLE_ROLE)))

    def visible_samples(self) -> list[int]:
        """Sample indices in the order shown (after sorting and filtering)."""
        return [int(self.proxy.data(self.proxy.index(r, 0), SAMPLE_ROLE))
                for r in range(self.proxy.rowCount())]  # fmt: skip

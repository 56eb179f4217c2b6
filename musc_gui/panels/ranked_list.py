"""Ranked list of scored parts: worst first, sortable, filterable, keyboard-driven.

The table (``ranked_model``) shows each part's verdict under ``AppState.decision`` right after
its rank and score, and a green check before known-good parts (``AppState.policy.reference``).
Selecting a row calls ``state.set_current`` and ``current_changed`` selects the row back
(guarded against loops); G or the context menu marks the current part as known-good, which
changes the policy (the controller then recomputes the decision).
"""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPoint, QSize, Qt
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.decision import outcome
from engine.session.results import ScoreResult
from musc_gui.panels.ranked_model import (
    COLUMNS,
    NAME,
    NAME_MIN,
    RANK,
    SAMPLE_ROLE,
    SCORE,
    SORT_ROLE,
    THUMB,
    THUMB_SIZE,
    TYPE,
    VERDICT,
    RankedFilter,
    RankedModel,
)
from musc_gui.state import AppState

__all__ = ["COLUMNS", "NAME", "NAME_MIN", "RANK", "SAMPLE_ROLE", "SCORE", "SORT_ROLE", "THUMB",
           "TYPE", "VERDICT", "RankedListPanel", "RankedTableView"]  # fmt: skip


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
    """Table of parts, worst first, bound to an :class:`AppState`.

    Attributes:
        known_good_action: "Mark as known-good" / "Unmark known-good" for the current part (G).
        extra_actions: More context-menu actions on the current part (line mode's pin/unpin).
    """

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
        self.count_label.setWordWrap(True)
        self.table = RankedTableView()
        self._build_table()
        self.known_good_action = QAction("Mark as known-good", self)
        self.known_good_action.setShortcut(QKeySequence("G"))
        self.known_good_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.known_good_action.triggered.connect(lambda: self.toggle_known_good())
        self.table.addAction(self.known_good_action)  # G only while the list has the focus
        self.context_menu = QMenu(self)  # popup(), not exec(): no nested event loop
        self.extra_actions: list[QAction] = []
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)

        top = QHBoxLayout()
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.filter_combo, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.count_label)
        layout.addWidget(self.table)

        self.filter_combo.currentIndexChanged.connect(self._filter_chosen)
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)
        state.result_changed.connect(self._result_changed)
        state.current_changed.connect(self.select_sample)
        state.decision_changed.connect(self._decision_changed)
        state.policy_changed.connect(self._policy_changed)
        self._result_changed(state.result)

    def _build_table(self) -> None:
        table = self.table
        table.setModel(self.proxy)
        table.setSortingEnabled(True)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # names keep their numbers
        table.setWordWrap(False)
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setDefaultSectionSize(THUMB_SIZE + 4)
        header = table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(24)
        metrics = table.fontMetrics()
        advance = metrics.horizontalAdvance
        # what each column needs; kept, as a hidden section reports a width of 0
        self._widths = {RANK: advance("Rank") + 18, SCORE: advance("0.00000") + 12,
                        VERDICT: advance("Verdict") + 18, THUMB: THUMB_SIZE + 8,
                        TYPE: advance("scratch") + 16}  # fmt: skip
        for column, width in self._widths.items():
            mode = (
                QHeaderView.ResizeMode.Interactive
                if column == TYPE
                else QHeaderView.ResizeMode.Fixed
            )
            header.setSectionResizeMode(column, mode)
            header.resizeSection(column, width)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        table.sortByColumn(SCORE, Qt.SortOrder.DescendingOrder)  # worst first

    # -- state -> view ------------------------------------------------------------------------

    def _result_changed(self, result: ScoreResult | None) -> None:
        self._syncing = True
        try:
            self._fill_filters(result)
            self.model.set_result(result)
        finally:
            self._syncing = False
        self.fit_columns()
        self.select_sample(self.state.current)
        self._update_count()

    def _fill_filters(self, result: ScoreResult | None) -> None:
        chosen = self.filter_combo.currentData() or "all"
        types = sorted({s.defect_type for s in result.samples if s.defect_type}) if result else []
        entries = [("All parts", "all"), ("Fail (score ≥ image cut)", "fail"),
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

    def _decision_changed(self, _decision: object) -> None:
        self.model.columns_changed(VERDICT)
        self.proxy.refresh()
        self._update_count()
        self.select_sample(self.state.current)

    def _policy_changed(self, _policy: object) -> None:
        self.model.columns_changed(NAME)
        self._update_count()

    def fit_columns(self) -> None:
        """Hide the type, then the thumbnail, when the name would get less than NAME_MIN px."""
        header = self.table.horizontalHeader()
        result = self.state.result
        room = self.width() - self.table.verticalScrollBar().sizeHint().width() - 4
        fixed = sum(self._widths[c] for c in (RANK, SCORE, VERDICT, THUMB))
        has_types = result is not None and any(s.defect_type for s in result.samples)
        show_type = has_types and room - fixed - self._widths[TYPE] >= NAME_MIN
        header.setSectionHidden(TYPE, not show_type)
        header.setSectionHidden(THUMB, room - fixed < NAME_MIN)

    def resizeEvent(self, event) -> None:
        """Re-fit the columns to the new width."""
        super().resizeEvent(event)
        self.fit_columns()

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

    def count_text(self) -> tuple[str, str]:
        """The count line ("N parts: P pass, F fail · FR x, escapes y") and its tooltip."""
        result, decision = self.state.result, self.state.decision
        if result is None:
            return "", ""
        total = len(result.samples)
        shown = "" if self.proxy.rowCount() == total else f" ({self.proxy.rowCount()} shown)"
        if decision is None:
            return f"{total} parts: no decision yet{shown}", ""
        counts = outcome(result, decision)
        text = f"{total} parts: {counts.passed} pass, {counts.failed} fail"
        tip = ""
        if counts.false_rejects is not None:
            text += f" · FR {len(counts.false_rejects)}, escapes {len(counts.escapes)}"
            tip = (f"Against the ground truth: false rejects (good parts that fail): "
                   f"{', '.join(counts.false_rejects) or 'none'}\nescapes (defective parts "
                   f"that pass): {', '.join(counts.escapes) or 'none'}")  # fmt: skip
        marked = sum(name in self.state.policy.reference for name in result.names)
        if marked:
            text += f" · {marked} known-good"
        return text + shown, tip

    def _update_count(self) -> None:
        text, tip = self.count_text()
        self.count_label.setText(text)
        self.count_label.setToolTip(tip)

    # -- view -> state ------------------------------------------------------------------------

    def _filter_chosen(self, _position: int) -> None:
        self.proxy.set_mode(self.filter_combo.currentData() or "all")
        self._update_count()
        self.select_sample(self.state.current)

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._syncing or not current.isValid():
            return
        self.state.set_current(int(self.proxy.data(current, SAMPLE_ROLE)))

    def toggle_known_good(self, sample: int | None = None) -> bool | None:
        """Mark ``sample`` (default: the current part) as known-good, or unmark it.

        Returns:
            Whether it is known-good now; None when there is no such part.
        """
        result = self.state.result
        sample = self.state.current if sample is None else sample
        if result is None or not 0 <= sample < len(result.samples):
            return None
        name = result.samples[sample].name
        reference = tuple(self.state.policy.reference)
        marked = name not in reference
        reference = reference + (name,) if marked else tuple(n for n in reference if n != name)
        self.state.set_policy(self.state.policy.replace(reference=reference))
        return marked

    def _context_menu(self, position: QPoint) -> None:
        index = self.table.indexAt(position)
        if not index.isValid():
            return
        sample = int(self.proxy.data(index, SAMPLE_ROLE))
        self.state.set_current(sample)
        marked = self.model.known_good(sample)
        self.known_good_action.setText("Unmark known-good" if marked else "Mark as known-good")
        self.context_menu.clear()
        self.context_menu.addAction(self.known_good_action)
        self.context_menu.addActions(self.extra_actions)
        self.context_menu.popup(self.table.viewport().mapToGlobal(position))

    def visible_samples(self) -> list[int]:
        """Sample indices in the order shown (after sorting and filtering)."""
        return [int(self.proxy.data(self.proxy.index(r, 0), SAMPLE_ROLE))
                for r in range(self.proxy.rowCount())]  # fmt: skip

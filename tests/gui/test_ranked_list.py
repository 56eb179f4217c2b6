"""RankedListPanel: rows, default order, filters, keyboard navigation, two-way selection."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from musc_gui.panels.ranked_list import SCORE, SORT_ROLE, VERDICT, RankedListPanel
from musc_gui.state import AppState


@pytest.fixture
def panel(qtbot, scored_line):
    _, result = scored_line
    state = AppState()
    state.set_result(result)
    state.set_threshold(float(np.median(result.image_scores)))
    widget = RankedListPanel(state)
    qtbot.addWidget(widget)
    widget.resize(500, 600)
    widget.show()
    return widget


def test_rows_equal_samples_sorted_worst_first(panel, scored_line):
    _, result = scored_line
    assert panel.proxy.rowCount() == len(result.samples)
    shown = panel.visible_samples()
    assert shown == list(result.ranking())
    scores = [panel.proxy.data(panel.proxy.index(r, SCORE), SORT_ROLE) for r in range(len(shown))]
    assert scores == sorted(scores, reverse=True)
    assert panel.proxy.data(panel.proxy.index(0, 0)) == 1  # rank 1 on top


def test_fail_filter_and_threshold(panel, scored_line):
    _, result = scored_line
    state = panel.state
    panel.filter_combo.setCurrentIndex(panel.filter_combo.findData("fail"))
    shown = panel.visible_samples()
    assert shown and all(result.image_scores[i] >= state.threshold for i in shown)
    assert len(shown) == int(np.sum(result.image_scores >= state.threshold))
    state.set_threshold(float(result.image_scores.max()) + 1)  # nothing fails any more
    assert panel.visible_samples() == []
    panel.filter_combo.setCurrentIndex(panel.filter_combo.findData("pass"))
    assert len(panel.visible_samples()) == len(result.samples)
    assert panel.proxy.data(panel.proxy.index(0, VERDICT)) == "pass"


def test_type_filter(panel, scored_line):
    _, result = scored_line
    types = {s.defect_type for s in result.samples}
    assert panel.filter_combo.findData("type:good") >= 0
    panel.filter_combo.setCurrentIndex(panel.filter_combo.findData("type:good"))
    shown = panel.visible_samples()
    assert shown and all(result.samples[i].defect_type == "good" for i in shown)
    assert len(types) + 3 == panel.filter_combo.count()


def test_keyboard_navigation_updates_state(qtbot, panel, scored_line):
    _, result = scored_line
    order = list(result.ranking())
    panel.table.setFocus()
    panel.state.set_current(int(order[0]))
    assert panel.table.selectionModel().currentIndex().row() == 0
    qtbot.keyClick(panel.table, Qt.Key.Key_Down)
    assert panel.state.current == order[1]
    qtbot.keyClick(panel.table, Qt.Key.Key_End)
    assert panel.state.current == order[-1]
    qtbot.keyClick(panel.table, Qt.Key.Key_Home)
    assert panel.state.current == order[0]
    qtbot.keyClick(panel.table, Qt.Key.Key_PageDown)
    assert panel.state.current != order[0]


def test_state_selects_row_and_header_sort(panel, scored_line):
    _, result = scored_line
    worst_last = int(result.ranking()[-1])
    panel.state.set_current(worst_last)
    row = panel.table.selectionModel().currentIndex()
    assert panel.proxy.data(row, SORT_ROLE) == len(result.samples)  # rank column: last
    panel.table.sortByColumn(SCORE, Qt.SortOrder.AscendingOrder)
    assert panel.visible_samples()[0] == worst_last
    assert panel.state.current == worst_last  # re-sorting does not change the selection


def test_thumbnails_load_lazily(panel, scored_line):
    from PySide6.QtGui import QPixmap

    pixmap = panel.proxy.data(panel.proxy.index(0, 1), Qt.ItemDataRole.DecorationRole)
    assert isinstance(pixmap, QPixmap) and not pixmap.isNull()
    assert max(pixmap.width(), pixmap.height()) <= 40


def test_new_result_keeps_selection(panel, scored_line):
    session, result = scored_line
    panel.state.set_current(3)
    panel.state.set_result(session.rescore())
    assert panel.state.current == 3
    assert panel.proxy.data(panel.table.selectionModel().currentIndex(), 0x0101 + 1) == 3

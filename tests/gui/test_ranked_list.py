"""RankedListPanel: rows, order, verdicts from the decision, known-good marks, filters, keys."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from engine.decision import Decision, decide, outcome
from engine.decision.thresholds import user_threshold
from musc_gui.panels.ranked_list import (
    NAME,
    NAME_MIN,
    SCORE,
    SORT_ROLE,
    THUMB,
    TYPE,
    VERDICT,
    RankedListPanel,
)
from musc_gui.state import AppState


def _decision_at(result, image_cut: float) -> Decision:
    """The automatic decision with the image cut moved to ``image_cut``."""
    auto = decide(result)
    return Decision(user_threshold(image_cut, "image cut"), auto.pixel)


@pytest.fixture
def panel(qtbot, scored_line):
    _, result = scored_line
    state = AppState()
    state.set_result(result)
    state.set_decision(_decision_at(result, float(np.median(result.image_scores))))
    widget = RankedListPanel(state)
    qtbot.addWidget(widget)
    widget.resize(440, 600)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_rows_equal_samples_sorted_worst_first(panel, scored_line):
    _, result = scored_line
    assert panel.proxy.rowCount() == len(result.samples)
    shown = panel.visible_samples()
    assert shown == list(result.ranking())
    scores = [panel.proxy.data(panel.proxy.index(r, SCORE), SORT_ROLE) for r in range(len(shown))]
    assert scores == sorted(scores, reverse=True)
    assert panel.proxy.data(panel.proxy.index(0, 0)) == 1  # rank 1 on top


def test_verdicts_and_fail_filter_follow_the_decision(panel, scored_line):
    _, result = scored_line
    state = panel.state
    cut = state.decision.image.value
    verdicts = {
        i: panel.model.data(panel.model.index(i, VERDICT)) for i in range(len(result.samples))
    }
    assert verdicts == {
        i: "FAIL" if s >= cut else "pass" for i, s in enumerate(result.image_scores)
    }
    panel.filter_combo.setCurrentIndex(panel.filter_combo.findData("fail"))
    shown = panel.visible_samples()
    assert shown and all(result.image_scores[i] >= cut for i in shown)
    assert len(shown) == int(np.sum(result.image_scores >= cut))
    state.set_decision(_decision_at(result, float(result.image_scores.max()) + 1))
    assert panel.visible_samples() == []  # nothing fails any more
    panel.filter_combo.setCurrentIndex(panel.filter_combo.findData("pass"))
    assert len(panel.visible_samples()) == len(result.samples)
    assert panel.proxy.data(panel.proxy.index(0, VERDICT)) == "pass"
    state.set_decision(None)  # no decision: no verdict, neither fail nor pass
    assert panel.visible_samples() == []
    assert panel.model.data(panel.model.index(0, VERDICT)) == "–"
    assert "no decision" in panel.count_label.text()


def test_count_line_with_ground_truth(panel, scored_line):
    _, result = scored_line
    counts = outcome(result, panel.state.decision)
    assert counts.false_rejects is not None
    expected = (f"{len(result.samples)} parts: {counts.passed} pass, {counts.failed} fail · "
                f"FR {len(counts.false_rejects)}, escapes {len(counts.escapes)}")  # fmt: skip
    assert panel.count_label.text() == expected
    for name in counts.false_rejects + counts.escapes:
        assert name in panel.count_label.toolTip()


def test_verdict_column_readable_at_440_px(panel):
    header = panel.table.horizontalHeader()
    assert panel.width() == 440
    assert header.visualIndex(VERDICT) <= 2  # right after rank and score
    left = header.sectionViewportPosition(VERDICT)
    right = left + header.sectionSize(VERDICT)
    assert left >= 0 and right <= panel.table.viewport().width()
    text = panel.table.fontMetrics().horizontalAdvance("Verdict")
    assert header.sectionSize(VERDICT) >= text + 8  # neither header nor FAIL elided
    assert not header.isSectionHidden(VERDICT)
    assert header.sectionSize(NAME) >= NAME_MIN  # the name column keeps some room
    assert not header.isSectionHidden(TYPE) and not header.isSectionHidden(THUMB)


def test_narrow_panel_drops_type_then_thumbnail(panel):
    header = panel.table.horizontalHeader()
    # and back: a hidden column must not be taken for a narrow one
    steps = ((320, False, True), (250, False, False), (320, False, True), (440, True, True))
    for width, type_shown, thumb_shown in steps:
        panel.resize(width, 600)
        assert header.isSectionHidden(TYPE) is not type_shown, width
        assert header.isSectionHidden(THUMB) is not thumb_shown, width
        right = header.sectionViewportPosition(VERDICT) + header.sectionSize(VERDICT)
        assert right <= panel.table.viewport().width()
        assert header.sectionSize(NAME) >= NAME_MIN - 8, width
        assert panel.table.horizontalScrollBar().maximum() == 0, f"scrolls sideways at {width}"


def _marked(panel, sample: int) -> bool:
    """Whether the name cell of ``sample`` carries the known-good check."""
    icon = panel.model.data(panel.model.index(sample, NAME), Qt.ItemDataRole.DecorationRole)
    tip = panel.model.data(panel.model.index(sample, NAME), Qt.ItemDataRole.ToolTipRole)
    assert (icon is not None) == ("known-good" in tip)
    return icon is not None and not icon.isNull()


def test_mark_known_good(panel, scored_line, qtbot):
    _, result = scored_line
    state = panel.state
    panel.table.setFocus()
    state.set_current(2)
    name = result.samples[2].name
    with qtbot.waitSignal(state.policy_changed):
        qtbot.keyClick(panel.table, Qt.Key.Key_G)
    assert state.policy.reference == (name,)
    assert _marked(panel, 2) and not _marked(panel, 5)
    assert "1 known-good" in panel.count_label.text()
    assert panel.toggle_known_good(5) is True
    assert state.policy.reference == (name, result.samples[5].name)
    qtbot.keyClick(panel.table, Qt.Key.Key_G)  # G again on the current part: unmarked
    assert state.policy.reference == (result.samples[5].name,)
    assert not _marked(panel, 2) and _marked(panel, 5)
    assert panel.state.policy.image == "auto"  # only the reference changed


def test_context_menu_offers_the_mark(panel, scored_line):
    _, result = scored_line
    rect = panel.table.visualRect(panel.proxy.index(1, NAME))
    panel._context_menu(QPoint(rect.center()))
    menu = panel.context_menu
    assert [action.text() for action in menu.actions()] == ["Mark as known-good"]
    assert panel.state.current == panel.visible_samples()[1]
    menu.actions()[0].trigger()
    menu.close()
    assert panel.state.policy.reference == (result.samples[panel.state.current].name,)
    panel._context_menu(QPoint(rect.center()))
    assert [action.text() for action in menu.actions()] == ["Unmark known-good"]
    menu.close()


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

    pixmap = panel.proxy.data(panel.proxy.index(0, THUMB), Qt.ItemDataRole.DecorationRole)
    assert isinstance(pixmap, QPixmap) and not pixmap.isNull()
    assert max(pixmap.width(), pixmap.height()) <= 40


def test_new_result_keeps_selection(panel, scored_line):
    session, result = scored_line
    panel.state.set_current(3)
    panel.state.set_result(session.rescore())
    assert panel.state.current == 3
    assert panel.proxy.data(panel.table.selectionModel().currentIndex(), 0x0101 + 1) == 3

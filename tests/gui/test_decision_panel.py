"""DecisionPanel bound to a bare AppState: shows the decision, writes the user's policy."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.decision import DecisionPolicy, decide
from musc_gui.panels.decision_panel import DecisionPanel
from musc_gui.state import AppState


@pytest.fixture
def bound(qtbot, scored_line):
    """A panel on a state holding the scored line; policy changes are decided at once."""
    session, result = scored_line
    state = AppState(session.config)
    state.set_dataset(session.dataset)
    state.set_result(result)
    state.policy_changed.connect(lambda policy: state.set_decision(decide(result, policy)))
    state.set_decision(decide(result, state.policy))
    panel = DecisionPanel(state)
    qtbot.addWidget(panel)
    panel.show()
    return state, panel


def test_shows_the_cuts_and_how_they_were_chosen(bound):
    state, panel = bound
    decision = state.decision
    assert panel.image_spin.value() == pytest.approx(decision.image.value, abs=1e-5)
    assert panel.pixel_spin.value() == pytest.approx(decision.pixel.value, abs=1e-5)
    assert panel.image_how.text() == decision.image.how and "lowest-scoring" in decision.image.how
    assert panel.pixel_how.text() == decision.pixel.how
    assert panel.image_auto.isChecked() and panel.pixel_auto.isChecked()
    assert not panel.area_mm2.isHidden()  # the line has XYZ


def test_counts_and_ground_truth_mistakes(bound):
    state, panel = bound
    result = state.result
    fails = state.decision.fails(result.image_scores)
    assert panel.counts.text().startswith(f"{int(fails.sum())} fail")
    assert f"{int((~fails).sum())} pass" in panel.counts.text()
    labels = np.array(result.labels)
    rejects = [n for n, f, y in zip(result.names, fails, labels, strict=True) if f and y == 0]
    assert f"False rejects ({len(rejects)})" in panel.mistakes.text() or not rejects
    for name in rejects:
        assert name in panel.mistakes.toolTip()


def test_typing_a_cut_sets_the_policy_and_auto_returns(qtbot, bound):
    state, panel = bound
    value = round(float(np.median(state.result.image_scores)), 4)
    panel.image_spin.lineEdit().selectAll()
    qtbot.keyClicks(panel.image_spin.lineEdit(), f"{value}")
    qtbot.keyClick(panel.image_spin.lineEdit(), Qt.Key.Key_Return)
    assert state.policy.image == pytest.approx(value)
    assert state.decision.image.source == "user" and state.decision.image.value == value
    assert not panel.image_auto.isChecked()
    assert "set by the user" in panel.image_how.text()
    panel.image_auto.setChecked(True)
    assert state.policy.image == "auto" and state.decision.image.source == "auto"
    panel.pixel_spin.setValue(0.5)
    assert state.policy.pixel == 0.5 and state.decision.pixel.value == 0.5


def test_minimum_areas_go_into_the_policy(bound):
    state, panel = bound
    panel.area_px.setValue(25)
    assert state.policy.min_area_px == 25 and state.decision.min_area_px == 25
    panel.area_px.setValue(-1)
    assert state.policy.min_area_px is None and "auto" in panel.area_px.text()
    panel.area_mm2.setValue(0.2)
    assert state.policy.min_area_mm2 == pytest.approx(0.2)


def test_more_than_half_failing_is_a_visible_note(bound):
    state, panel = bound
    scores = state.result.image_scores
    state.set_policy(DecisionPolicy(image=float(np.min(scores))))  # every part fails
    assert state.decision.notes
    assert not panel.notes.isHidden() and "more than half" in panel.notes_text()
    state.set_policy(DecisionPolicy(image=float(np.max(scores)) + 1.0))  # none fails
    assert panel.notes.isHidden() and panel.notes_text() == ""


def test_known_good_count_and_clear(bound):
    state, panel = bound
    assert not panel.clear_known.isEnabled() and "None marked" in panel.known_good.text()
    good = tuple(n for n, y in zip(state.result.names, state.result.labels, strict=True) if y == 0)
    state.set_policy(state.policy.replace(reference=good[:4]))
    assert panel.known_good.text().startswith("4 parts marked")
    assert state.decision.image.expected_false_reject == pytest.approx(1 / 5)
    assert "20.0 %" in panel.risk.text() and not panel.risk.isHidden()
    panel.clear_known.click()
    assert state.policy.reference == () and not panel.clear_known.isEnabled()
    assert panel.risk.isHidden()


def test_without_xyz_the_mm2_row_is_hidden(bound):
    from dataclasses import replace

    state, panel = bound
    flat = replace(
        state.dataset, samples=[replace(s, xyz_path=None) for s in state.dataset.samples]
    )
    state.set_dataset(flat)
    assert panel.area_mm2.isHidden() and panel.area_mm2_label.isHidden()

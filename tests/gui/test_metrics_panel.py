"""The metrics panel: metrics of the fixture, the draggable threshold, Suggest, no-GT mode."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from musc_gui.panels.metrics_panel import MetricsPanel
from musc_gui.state import AppState

SHOTS = Path("/tmp/gui_shots")


@pytest.fixture
def panel(qtbot, scored_line):
    _, result = scored_line
    state = AppState(result.config)
    panel = MetricsPanel(state)
    qtbot.addWidget(panel)
    panel.resize(700, 820)
    panel.show()
    with qtbot.waitSignal(panel.metrics_shown, timeout=20_000):
        state.set_result(result)
    return panel, state


def test_shows_metrics(panel):
    panel, state = panel
    assert panel.has_ground_truth and panel.table.isVisible()
    rows = [panel.table.verticalHeaderItem(r).text() for r in range(panel.table.rowCount())]
    assert {"Image AUROC", "Image AP", "Image F1-max", "Pixel AUROC", "AUPRO@0.3"} <= set(rows)
    columns = [panel.table.horizontalHeaderItem(c).text() for c in range(panel.table.columnCount())]
    assert columns[0] == "fused"
    value = float(panel.table.item(0, 0).text())
    assert 0.0 <= value <= 1.0
    assert panel.roc_plot.isVisible() and panel.roc_plot.plotItem.listDataItems()
    SHOTS.mkdir(parents=True, exist_ok=True)
    panel.grab().save(str(SHOTS / "metrics.png"))


def test_dragging_the_line_sets_the_threshold(panel):
    panel, state = panel
    line = panel.threshold_line
    line.setValue(0.123)
    line.sigPositionChangeFinished.emit(line)
    assert state.threshold == pytest.approx(0.123)
    state.set_threshold(0.4)  # and the line follows the state
    assert line.value() == pytest.approx(0.4)


def test_suggest_sets_a_threshold_between_the_extremes(panel):
    panel, state = panel
    scores = state.result.image_scores
    value = panel.suggest()
    assert scores.min() <= state.threshold <= scores.max()
    assert state.threshold == pytest.approx(value)
    assert "F1" in panel.status.text()
    assert panel.threshold_line.value() == pytest.approx(value)


def test_without_labels_histogram_only(qtbot, panel):
    panel, state = panel
    result = state.result
    unlabelled = [dataclasses.replace(s, label=None) for s in result.samples]
    with qtbot.waitSignal(panel.metrics_shown, timeout=5_000):
        state.set_result(dataclasses.replace(result, samples=unlabelled))
    assert not panel.has_ground_truth
    assert not panel.table.isVisible() and not panel.roc_plot.isVisible()
    assert panel.histogram.isVisible() and panel.histogram.plotItem.listDataItems()
    panel.suggest()
    assert "MAD" in panel.status.text()
    qtbot.wait(50)  # let the layout give the hidden plots' room to the histogram
    panel.grab().save(str(SHOTS / "metrics_no_gt.png"))

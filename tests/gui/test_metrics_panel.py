"""The metrics panel: metrics of the fixture, the draggable threshold, Suggest, no-GT mode."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from engine.evaluation.evaluate import evaluate_all
from engine.evaluation.thresholds import suggested_threshold
from musc_gui.panels.metrics_panel import MetricsPanel
from musc_gui.state import AppState

SHOTS = Path("/tmp/gui_shots")
# What each header of the table means, spelled out here rather than imported from the panel, so
# that a panel which files a metric under the wrong column or row fails.
COLUMN_GROUPS = {"fused": "metrics", "2D": "metrics_2d", "3D": "metrics_3d"}
ROW_METRICS = {
    "Image AUROC": "image_auroc",
    "Image AP": "image_ap",
    "Image F1-max": "image_f1_max",
    "Pixel AUROC": "pixel_auroc",
    "Pixel AP": "pixel_ap",
    "Pixel F1-max": "pixel_f1_max",
    "AUPRO@0.3": "aupro",
}


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
    expected = evaluate_all(state.result)
    table = panel.table
    rows = [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]
    columns = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    # every modality the engine evaluated has its column, fused first; every metric its row
    assert columns == [t for t in ("fused", "2D", "3D") if expected.get(COLUMN_GROUPS[t])]
    assert columns == ["fused", "2D", "3D"]  # the fixture is scored in 2D+3D
    assert rows == [title for title, key in ROW_METRICS.items() if key in expected["metrics"]]
    assert {"Image AUROC", "Image AP", "Image F1-max", "Pixel AUROC", "AUPRO@0.3"} <= set(rows)
    for r, title in enumerate(rows):
        for c, column in enumerate(columns):
            value = expected[COLUMN_GROUPS[column]].get(ROW_METRICS[title])
            text = table.item(r, c).text()
            if value is None:
                assert text == "", f"{title} / {column}: {text!r} where the engine has none"
            else:
                assert float(text) == pytest.approx(value, abs=5e-4), f"{title} / {column}"
    # the check above can only tell the columns apart if the modalities score differently
    by_column = [[expected[COLUMN_GROUPS[c]].get(ROW_METRICS[t]) for t in rows] for c in columns]
    assert len({tuple(np.round(values, 3)) for values in by_column}) == len(columns)
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


def test_suggest_sets_the_engines_max_f1_threshold(panel):
    panel, state = panel
    result = state.result
    expected, _how = suggested_threshold(result.image_scores, result.labels)
    # the fixture's max-F1 cut is strictly inside the scores, so "the minimum" or "the maximum"
    # would not pass by accident
    assert result.image_scores.min() < expected < result.image_scores.max()
    state.set_threshold(float(result.image_scores.max()) + 1)  # somewhere else first
    panel.suggest_button.click()
    assert state.threshold == pytest.approx(expected, abs=1e-6)
    assert panel.suggest() == pytest.approx(expected, abs=1e-6)
    assert "F1" in panel.status.text()
    assert panel.threshold_line.value() == pytest.approx(expected, abs=1e-6)


def test_without_labels_histogram_only(qtbot, panel):
    panel, state = panel
    result = state.result
    unlabelled = [dataclasses.replace(s, label=None) for s in result.samples]
    with qtbot.waitSignal(panel.metrics_shown, timeout=5_000):
        state.set_result(dataclasses.replace(result, samples=unlabelled))
    assert not panel.has_ground_truth
    assert not panel.table.isVisible() and not panel.roc_plot.isVisible()
    assert panel.histogram.isVisible() and panel.histogram.plotItem.listDataItems()
    expected, _how = suggested_threshold(result.image_scores, None)  # the robust cut
    assert expected != pytest.approx(suggested_threshold(result.image_scores, result.labels)[0])
    panel.suggest_button.click()
    assert state.threshold == pytest.approx(expected, abs=1e-6)
    assert "MAD" in panel.status.text()
    qtbot.wait(50)  # let the layout give the hidden plots' room to the histogram
    panel.grab().save(str(SHOTS / "metrics_no_gt.png"))

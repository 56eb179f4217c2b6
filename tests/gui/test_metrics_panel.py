"""The metrics panel: metrics, the operating point, the draggable cut, Suggest, no-GT mode."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from engine.decision import Decision, decide, outcome
from engine.decision.thresholds import user_threshold
from engine.evaluation.evaluate import evaluate_all
from musc_gui.panels.metrics_panel import MetricsPanel, operating_point
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
        state.set_decision(decide(result))
    return panel, state


def _decision_at(result, image_cut: float) -> Decision:
    return Decision(user_threshold(image_cut, "image cut"), decide(result).pixel)


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


def test_operating_point_sits_at_the_cut(panel):
    panel, state = panel
    result = state.result
    labels = np.array(result.labels)
    scores = np.asarray(result.image_scores, dtype=np.float64)
    # a cut strictly between scores, so that ">=" and ">" would not tell it apart by accident
    ordered = np.sort(scores)
    cut = float((ordered[4] + ordered[5]) / 2)
    state.set_decision(_decision_at(result, cut))
    fails = scores >= cut
    fpr = (fails & (labels == 0)).sum() / (labels == 0).sum()
    tpr = (fails & (labels == 1)).sum() / (labels == 1).sum()
    precision = (fails & (labels == 1)).sum() / fails.sum()
    assert 0 < fpr < 1 and 0 < tpr < 1
    assert operating_point(labels, scores, cut) == pytest.approx(
        {"fpr": fpr, "tpr": tpr, "recall": tpr, "precision": precision}
    )
    x, y = panel.roc_point.getData()
    assert (x[0], y[0]) == pytest.approx((fpr, tpr))
    x, y = panel.pr_point.getData()
    assert (x[0], y[0]) == pytest.approx((tpr, precision))
    assert panel.roc_point in panel.roc_plot.plotItem.items
    assert operating_point(labels, scores, ordered[-1] + 1)["precision"] == 1.0  # none flagged


def test_false_rejects_and_escapes_are_named(panel):
    panel, state = panel
    counts = outcome(state.result, state.decision)
    assert counts.false_rejects or counts.escapes
    text = panel.outcome_label.text()
    assert f"False rejects (good parts that fail): {len(counts.false_rejects)}" in text
    assert f"Escapes (defective parts that pass): {len(counts.escapes)}" in text
    for name in counts.false_rejects + counts.escapes:
        assert name in text


def test_the_line_shows_the_cut_and_dragging_it_sets_the_policy(panel):
    panel, state = panel
    line = panel.threshold_line
    assert line.value() == pytest.approx(state.decision.image.value)
    state.set_decision(_decision_at(state.result, 0.4))  # the line follows the decision
    assert line.value() == pytest.approx(0.4)
    line.setValue(0.123)
    line.sigPositionChangeFinished.emit(line)
    assert state.policy.image == pytest.approx(0.123)
    assert state.policy.pixel == "auto"  # only the image cut was set


def test_suggest_asks_for_max_f1(panel):
    panel, state = panel
    assert panel.suggest_button.isEnabled()
    panel.suggest_button.click()
    assert state.policy.image == "max-f1"


def test_without_labels_histogram_only(qtbot, panel):
    panel, state = panel
    result = state.result
    unlabelled = [dataclasses.replace(s, label=None) for s in result.samples]
    with qtbot.waitSignal(panel.metrics_shown, timeout=5_000):
        state.set_result(dataclasses.replace(result, samples=unlabelled))
    assert not panel.has_ground_truth
    assert not panel.table.isVisible() and not panel.roc_plot.isVisible()
    assert not panel.outcome_label.isVisible()
    assert panel.histogram.isVisible() and panel.histogram.plotItem.listDataItems()
    assert not panel.suggest_button.isEnabled()
    assert "no ground truth" in panel.histogram.plotItem.titleLabel.text
    assert "ground truth" in panel.suggest_button.toolTip()
    assert panel.suggest() is False
    assert state.policy.image == "auto"
    qtbot.wait(50)  # let the layout give the hidden plots' room to the histogram
    panel.grab().save(str(SHOTS / "metrics_no_gt.png"))


def test_readable_when_small(qtbot, panel):
    panel, _ = panel
    panel.resize(330, 650)  # a right-hand dock of a 1024 x 700 window
    qtbot.wait(50)
    assert not panel.curves.side_by_side  # the curves stack instead of squeezing
    for plot in (panel.roc_plot, panel.pr_plot, panel.histogram):
        assert plot.width() >= 200 and plot.height() >= 160
    assert panel.scroll.verticalScrollBar().maximum() > 0  # the rest is a scroll away
    panel.resize(900, 820)
    qtbot.wait(50)
    assert panel.curves.side_by_side

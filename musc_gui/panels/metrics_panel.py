"""Metrics of the current result: table, ROC / PR curves and a score histogram with the threshold.

``evaluate_all`` takes ~120 ms for 11 parts at 224² (pixel metrics sort every map pixel) and
grows linearly with the parts, so it runs on a worker thread; the histogram, which is instant,
is drawn at once. A result that arrives while an older one is still being evaluated wins: stale
answers are dropped by a generation counter.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sklearn.metrics import precision_recall_curve, roc_curve

from engine.evaluation.evaluate import evaluate_all
from engine.evaluation.thresholds import suggested_threshold
from engine.session.results import ScoreResult
from musc_gui.state import AppState

METRIC_ROWS = (
    ("image_auroc", "Image AUROC"),
    ("image_ap", "Image AP"),
    ("image_f1_max", "Image F1-max"),
    ("pixel_auroc", "Pixel AUROC"),
    ("pixel_ap", "Pixel AP"),
    ("pixel_f1_max", "Pixel F1-max"),
    ("aupro", "AUPRO@0.3"),
)
NORMAL_BRUSH = (70, 130, 220, 150)
DEFECT_BRUSH = (220, 70, 60, 150)


def labelled(result: ScoreResult) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, scores) of the parts with known labels, or None unless both classes occur."""
    known = [i for i, label in enumerate(result.labels) if label is not None]
    labels = np.array([result.labels[i] for i in known], dtype=int)
    if not known or labels.min() == labels.max():
        return None
    return labels, result.image_scores[known]


def _evaluate(result: ScoreResult) -> dict[str, Any]:
    """Everything the panel shows that needs ground truth (runs on the worker thread)."""
    labels, scores = labelled(result)
    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    return {"metrics": evaluate_all(result), "roc": (fpr, tpr), "pr": (recall, precision)}


class _Relay(QObject):
    """Carries a worker's answer back to the GUI thread (queued across threads)."""

    done = Signal(int, object)


class MetricsPanel(QWidget):
    """Metrics, curves and the pass/fail threshold of the state's result.

    Signals:
        metrics_shown(): the metrics of the latest result are on screen (for tests).
    """

    metrics_shown = Signal()

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self._generation = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")
        self._relay = _Relay(self)
        self._relay.done.connect(self._show_metrics)

        self.table = QTableWidget(0, 1)
        self.table.verticalHeader().setVisible(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.roc_plot = self._plot("ROC (image)", "false positive rate", "true positive rate")
        self.pr_plot = self._plot("Precision-recall (image)", "recall", "precision")
        self.histogram = self._plot("Image scores", "score", "parts")
        self.histogram.addLegend(offset=(-10, 10))
        self.threshold_line = pg.InfiniteLine(
            angle=90, movable=True, pen=pg.mkPen("k", width=2), hoverPen=pg.mkPen("m", width=3)
        )
        self.threshold_line.sigPositionChangeFinished.connect(self._line_moved)
        self.suggest_button = QPushButton("Suggest")
        self.suggest_button.setToolTip("Set the threshold to the suggested value")
        self.suggest_button.clicked.connect(self.suggest)
        self.status = QLabel("No result yet.")
        self.status.setWordWrap(True)

        curves = QHBoxLayout()
        curves.addWidget(self.roc_plot)
        curves.addWidget(self.pr_plot)
        controls = QHBoxLayout()
        controls.addWidget(self.status, 1)
        controls.addWidget(self.suggest_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(curves)
        layout.addWidget(self.histogram, 1)
        layout.addLayout(controls)

        state.result_changed.connect(self._result_changed)
        state.threshold_changed.connect(self._threshold_changed)
        self._result_changed(state.result)

    @staticmethod
    def _plot(title: str, x: str, y: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(background="w", title=title)
        plot.setLabel("bottom", x)
        plot.setLabel("left", y)
        plot.showGrid(x=True, y=True, alpha=0.3)
        for axis in ("bottom", "left"):
            plot.getAxis(axis).enableAutoSIPrefix(False)  # scores read as scores, not "x0.001"
        plot.setMinimumHeight(160)
        return plot

    # ------------------------------------------------------------------ state -> view

    @property
    def has_ground_truth(self) -> bool:
        """Whether the current result has labels of both classes."""
        result = self._state.result
        return result is not None and labelled(result) is not None

    def _result_changed(self, result: ScoreResult | None) -> None:
        self._generation += 1
        gt = result is not None and labelled(result) is not None
        for widget in (self.table, self.roc_plot, self.pr_plot):
            widget.setVisible(gt)
        self.table.setRowCount(0)
        self.roc_plot.clear()
        self.pr_plot.clear()
        self._draw_histogram(result)
        self.suggest_button.setEnabled(result is not None)
        if result is None:
            self.status.setText("No result yet.")
            return
        if not gt:
            self.status.setText("No ground truth: histogram of all scores only.")
            self.metrics_shown.emit()
            return
        self.status.setText("Computing metrics\u2026")
        generation = self._generation
        self._executor.submit(self._work, generation, result)

    def _work(self, generation: int, result: ScoreResult) -> None:
        try:
            payload: object = _evaluate(result)
        except Exception as error:  # shown in the panel; the worker thread must not die silently
            payload = error
        try:
            self._relay.done.emit(generation, payload)
        except RuntimeError:  # the panel was deleted meanwhile
            pass

    def _show_metrics(self, generation: int, payload: object) -> None:
        if generation != self._generation:
            return  # a newer result is being evaluated
        if isinstance(payload, Exception):
            self.status.setText(f"Metrics failed: {payload}")
            return
        assert isinstance(payload, dict)
        groups = {k: v for k, v in payload["metrics"].items() if v}
        columns = [k for k in ("metrics", "metrics_2d", "metrics_3d") if k in groups]
        titles = {"metrics": "fused", "metrics_2d": "2D", "metrics_3d": "3D"}
        rows = [(key, title) for key, title in METRIC_ROWS if key in groups.get("metrics", {})]
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels([titles[c] for c in columns])
        self.table.setRowCount(len(rows))
        self.table.setVerticalHeaderLabels([title for _, title in rows])
        for r, (key, _) in enumerate(rows):
            for c, column in enumerate(columns):
                value = groups[column].get(key)
                text = "" if value is None else f"{value:.3f}"
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.setFixedHeight(
            self.table.horizontalHeader().height() + 2 + self.table.verticalHeader().length()
        )
        self.roc_plot.plot(*payload["roc"], pen=pg.mkPen("b", width=2))
        self.roc_plot.plot(
            [0, 1], [0, 1], pen=pg.mkPen((150, 150, 150), style=Qt.PenStyle.DashLine)
        )
        self.pr_plot.plot(*payload["pr"], pen=pg.mkPen("r", width=2))
        self.status.setText("Drag the black line to move the threshold.")
        self.metrics_shown.emit()

    def _draw_histogram(self, result: ScoreResult | None) -> None:
        self.histogram.clear()
        if self.histogram.plotItem.legend is not None:
            self.histogram.plotItem.legend.clear()
        if result is None:
            return
        scores = np.asarray(result.image_scores, dtype=np.float64)
        low, high = float(scores.min()), float(scores.max())
        if high <= low:
            high = low + 1e-6
        edges = np.linspace(low, high, max(12, min(40, len(scores) // 2)) + 1)
        labels = np.array([-1 if lab is None else lab for lab in result.labels])
        if labelled(result) is not None:
            groups = [("normal", labels == 0, NORMAL_BRUSH), ("defective", labels == 1,
                      DEFECT_BRUSH)]  # fmt: skip
        else:
            groups = [("all parts", np.ones(len(scores), bool), NORMAL_BRUSH)]
        for name, chosen, brush in groups:
            counts, _ = np.histogram(scores[chosen], bins=edges)
            self.histogram.plot(edges, counts, stepMode="center", fillLevel=0, brush=brush,
                                pen=pg.mkPen(brush[:3]), name=name)  # fmt: skip
        self.histogram.addItem(self.threshold_line, ignoreBounds=True)
        self._set_line(self._state.threshold)

    def _set_line(self, value: float) -> None:
        self.threshold_line.blockSignals(True)
        self.threshold_line.setValue(value)
        self.threshold_line.blockSignals(False)

    def _threshold_changed(self, value: float) -> None:
        self._set_line(value)

    # ------------------------------------------------------------------ view -> state

    def _line_moved(self, line: pg.InfiniteLine | None = None) -> None:
        self._state.set_threshold(float(self.threshold_line.value()))

    def suggest(self) -> float | None:
        """Set the suggested threshold (max-F1 with labels, a robust cut without)."""
        result = self._state.result
        if result is None:
            return None
        value, how = suggested_threshold(result.image_scores, result.labels)
        self._state.set_threshold(value)
        self.status.setText(f"Suggested {value:.4f}: {how}.")
        return value

    def closeEvent(self, event) -> None:
        """Stop the worker thread with the panel."""
        self._generation += 1
        self._executor.shutdown(wait=False, cancel_futures=True)
        super().closeEvent(event)

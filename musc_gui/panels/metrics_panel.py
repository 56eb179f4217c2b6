"""Metrics of the current result: table, ROC / PR curves with the operating point, histogram.

The image cut shown is the decision's (``state.decision``); dragging the histogram's line or
pressing Suggest changes the *policy* (``state.set_policy``), and the controller turns that
into a new decision. ``evaluate_all`` takes ~120 ms for 11 parts at 224² (pixel metrics sort
every map pixel) and grows linearly, so it runs on a worker thread; the histogram and the
operating point are instant and drawn at once. Stale answers are dropped by a generation count.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sklearn.metrics import precision_recall_curve, roc_curve

from engine.decision import outcome
from engine.evaluation.evaluate import evaluate_all
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
POINT_BRUSH = (230, 0, 200)
PLOT_MIN = (210, 170)  # px: smaller plots clip their axis labels
CURVE_MAX_HEIGHT = 280  # px: a unit-square curve needs no more; the rest goes to the histogram
NAMES_SHOWN = 6
SUGGEST_TIP = "Set the image cut to the best F1 on the ground truth (policy: max-F1)"
NO_GT_TIP = (
    "Needs ground truth with good and defective parts. Without it the image cut comes "
    "from the normal reference (the lower-scoring parts or the known-good ones)."
)


def labelled(result: ScoreResult) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, scores) of the parts with known labels, or None unless both classes occur."""
    known = [i for i, label in enumerate(result.labels) if label is not None]
    labels = np.array([result.labels[i] for i in known], dtype=int)
    if not known or labels.min() == labels.max():
        return None
    return labels, result.image_scores[known]


def operating_point(labels: np.ndarray, scores: np.ndarray, cut: float) -> dict[str, float]:
    """FPR, TPR (= recall) and precision of "fail when score >= cut" on labelled parts.

    Precision with no part failing is 1, as on sklearn's precision-recall curve.
    """
    fails = np.asarray(scores, dtype=np.float64) >= cut
    labels = np.asarray(labels)
    true_pos = int((fails & (labels == 1)).sum())
    flagged = int(fails.sum())
    tpr = true_pos / max(int((labels == 1).sum()), 1)
    fpr = int((fails & (labels == 0)).sum()) / max(int((labels == 0).sum()), 1)
    return {"fpr": fpr, "tpr": tpr, "recall": tpr,
            "precision": true_pos / flagged if flagged else 1.0}  # fmt: skip


def _evaluate(result: ScoreResult) -> dict[str, Any]:
    """Everything the panel shows that needs ground truth (runs on the worker thread)."""
    labels, scores = labelled(result)
    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    return {"metrics": evaluate_all(result), "roc": (fpr, tpr), "pr": (recall, precision)}


def _names(names: tuple[str, ...]) -> str:
    more = f" +{len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
    return ", ".join(names[:NAMES_SHOWN]) + more


class _Relay(QObject):
    """Carries a worker's answer back to the GUI thread (queued across threads)."""

    done = Signal(int, object)


class _CurvesBox(QWidget):
    """ROC and PR side by side when there is room, one above the other when not."""

    def __init__(self, *plots: pg.PlotWidget) -> None:
        super().__init__()
        self._plots = plots
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self.side_by_side: bool | None = None
        self.arrange(True)

    def arrange(self, side_by_side: bool) -> None:
        """Put the plots in one row or one column."""
        if side_by_side == self.side_by_side:
            return
        self.side_by_side = side_by_side
        for k, plot in enumerate(self._plots):
            self._grid.addWidget(plot, 0 if side_by_side else k, k if side_by_side else 0)

    def fits_side_by_side(self, width: int) -> bool:
        """Whether two plots of the minimum width fit in ``width`` px."""
        return width >= len(self._plots) * PLOT_MIN[0] + self._grid.spacing() + 24


class MetricsPanel(QWidget):
    """Metrics, curves and the image cut of the state's result (scrolls when small).

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
        self._build()
        state.result_changed.connect(self._result_changed)
        state.decision_changed.connect(self._decision_changed)
        self._result_changed(state.result)

    def _build(self) -> None:
        self.table = QTableWidget(0, 1)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        rows = self.table.verticalHeader()  # compact rows: the dock is short at 1024 x 700
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.roc_plot = self._plot("ROC (image)", "false positive rate", "true positive rate")
        self.pr_plot = self._plot("Precision-recall (image)", "recall", "precision")
        self.roc_point = pg.ScatterPlotItem(size=12, brush=POINT_BRUSH, pen=pg.mkPen("k"))
        self.pr_point = pg.ScatterPlotItem(size=12, brush=POINT_BRUSH, pen=pg.mkPen("k"))
        for plot in (self.roc_plot, self.pr_plot):
            plot.setMaximumHeight(CURVE_MAX_HEIGHT)
        self.curves = _CurvesBox(self.roc_plot, self.pr_plot)
        self.histogram = self._plot("Image scores", "score", "parts")
        self.histogram.addLegend(offset=(-10, 10))
        self.threshold_line = pg.InfiniteLine(
            angle=90, movable=True, pen=pg.mkPen("k", width=2), hoverPen=pg.mkPen("m", width=3)
        )
        self.threshold_line.setToolTip("The image cut: drag it to set the cut by hand")
        self.threshold_line.sigPositionChangeFinished.connect(self._line_moved)
        self.suggest_button = QPushButton("Suggest")
        self.suggest_button.clicked.connect(self.suggest)
        self.outcome_label = QLabel("")
        self.outcome_label.setWordWrap(True)
        self.status = QLabel("No result yet.")
        self.status.setWordWrap(True)
        controls = QHBoxLayout()
        controls.addWidget(self.status, 1)
        controls.addWidget(self.suggest_button, 0, Qt.AlignmentFlag.AlignTop)
        content = QWidget()
        column = QVBoxLayout(content)
        for widget in (self.table, self.curves, self.outcome_label):
            column.addWidget(widget)
        column.addWidget(self.histogram, 1)
        column.addLayout(controls)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll)

    @staticmethod
    def _plot(title: str, x: str, y: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(background="w", title=title)
        plot.setLabel("bottom", x)
        plot.setLabel("left", y)
        plot.showGrid(x=True, y=True, alpha=0.3)
        for axis in ("bottom", "left"):
            plot.getAxis(axis).enableAutoSIPrefix(False)  # scores read as scores, not "x0.001"
        plot.setMinimumSize(*PLOT_MIN)
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
        for widget in (self.table, self.curves, self.outcome_label):
            widget.setVisible(gt)
        self.table.setRowCount(0)
        self.roc_plot.clear()
        self.pr_plot.clear()
        self._draw_histogram(result)
        self.suggest_button.setEnabled(gt)
        self.suggest_button.setToolTip(SUGGEST_TIP if gt else NO_GT_TIP)
        self._decision_changed(self._state.decision)
        if result is None:
            return
        self.histogram.setTitle("Image scores" if gt else "Image scores (no ground truth)")
        if not gt:
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
        self._fill_table(payload["metrics"])
        self.roc_plot.plot(*payload["roc"], pen=pg.mkPen("b", width=2))
        self.roc_plot.plot(
            [0, 1], [0, 1], pen=pg.mkPen((150, 150, 150), style=Qt.PenStyle.DashLine)
        )
        self.pr_plot.plot(*payload["pr"], pen=pg.mkPen("r", width=2))
        self.roc_plot.addItem(self.roc_point)
        self.pr_plot.addItem(self.pr_point)
        self._decision_changed(self._state.decision)
        self.metrics_shown.emit()

    def _fill_table(self, metrics: dict[str, Any]) -> None:
        groups = {k: v for k, v in metrics.items() if v}
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

    def _decision_changed(self, decision: object) -> None:
        """Move the line and the operating points; show mistakes against the ground truth."""
        result, decision = self._state.result, self._state.decision
        self.threshold_line.setVisible(decision is not None)
        for item in (self.roc_point, self.pr_point):
            item.setData([], [])
        if result is None or decision is None:
            self.outcome_label.setText("")
            self.status.setText("No result yet." if result is None else "No decision yet.")
            return
        cut = decision.image.value
        self._set_line(cut)
        self.status.setText(f"Image cut {cut:.4f}: {decision.image.how}. Drag the black line to "
                            "set it by hand.")  # fmt: skip
        known = labelled(result)
        if known is None:
            return
        point = operating_point(*known, cut)
        self.roc_point.setData([point["fpr"]], [point["tpr"]])
        self.pr_point.setData([point["recall"]], [point["precision"]])
        tip = (f"Operating point at the image cut {cut:.4f}: FPR {point['fpr']:.3f}, "
               f"TPR {point['tpr']:.3f}, precision {point['precision']:.3f}")  # fmt: skip
        self.roc_point.setToolTip(tip)
        self.pr_point.setToolTip(tip)
        counts = outcome(result, decision)
        if counts.false_rejects is None:  # some parts without a label
            self.outcome_label.setText(tip)
            return
        self.outcome_label.setText(
            f"{tip}.\nFalse rejects (good parts that fail): {len(counts.false_rejects)}"
            f"{': ' + _names(counts.false_rejects) if counts.false_rejects else ''}\n"
            f"Escapes (defective parts that pass): {len(counts.escapes)}"
            f"{': ' + _names(counts.escapes) if counts.escapes else ''}"
        )

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

    def _set_line(self, value: float) -> None:
        self.threshold_line.blockSignals(True)
        self.threshold_line.setValue(value)
        self.threshold_line.blockSignals(False)

    # ------------------------------------------------------------------ view -> state

    def _line_moved(self, line: pg.InfiniteLine | None = None) -> None:
        """The user dragged the cut: it becomes a typed value in the policy."""
        value = float(self.threshold_line.value())
        self._state.set_policy(self._state.policy.replace(image=value))

    def suggest(self) -> bool:
        """Ask for the max-F1 image cut (ground truth only); returns whether it was asked."""
        if not self.has_ground_truth:
            return False
        self._state.set_policy(self._state.policy.replace(image="max-f1"))
        return True

    def resizeEvent(self, event) -> None:
        """Stack the curves when the panel is too narrow for them side by side."""
        # The scroll area's width decides: the curves' own width never drops below their minimum.
        self.curves.arrange(self.curves.fits_side_by_side(event.size().width()))
        super().resizeEvent(event)

    def closeEvent(self, event) -> None:
        """Stop the worker thread with the panel."""
        self._generation += 1
        self._executor.shutdown(wait=False, cancel_futures=True)
        super().closeEvent(event)

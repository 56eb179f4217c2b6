"""Strip chart of the line: each part's score against its arrival time, with the image cut.

pyqtgraph draws the trace once per part with ``setData`` (no item is rebuilt); fails are red
dots, passes green, the cut a dashed horizontal line. The time axis shows the clock
(``DateAxisItem``), so "fails started at 14:32" can be read off it.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QWidget

FAIL_COLOUR, PASS_COLOUR, TRACE_COLOUR = (200, 40, 40), (30, 140, 60), (150, 150, 150)


class StripChart(pg.PlotWidget):
    """Score vs. time with the threshold line; fed from :meth:`LineStats.chart_data`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
        self.setBackground("w")
        self.setMinimumHeight(110)
        plot = self.getPlotItem()
        plot.setLabel("left", "score")
        plot.showGrid(x=True, y=True, alpha=0.25)
        plot.setMenuEnabled(False)
        plot.hideButtons()
        self.trace = plot.plot(pen=pg.mkPen(TRACE_COLOUR, width=1))
        self.passes = pg.ScatterPlotItem(size=6, pen=None, brush=pg.mkBrush(*PASS_COLOUR))
        self.fails = pg.ScatterPlotItem(size=8, pen=None, brush=pg.mkBrush(*FAIL_COLOUR))
        plot.addItem(self.passes)
        plot.addItem(self.fails)
        self.cut_line = pg.InfiniteLine(
            angle=0, movable=False,
            pen=pg.mkPen(FAIL_COLOUR, width=1.5, style=Qt.PenStyle.DashLine),
            label="cut {value:.3g}",
            labelOpts={"position": 0.05, "color": FAIL_COLOUR, "anchors": [(0, 1), (0, 1)]},
        )  # fmt: skip
        self.cut_line.setVisible(False)
        plot.addItem(self.cut_line, ignoreBounds=False)

    def sizeHint(self) -> QSize:
        """Modest: the chart shares a scrolling dock and takes the room that is left."""
        return QSize(300, 180)

    def set_points(self, times: np.ndarray, scores: np.ndarray, failed: np.ndarray) -> None:
        """Show ``scores`` at ``times`` (epoch seconds); ``failed`` marks the red ones."""
        self.trace.setData(times, scores)
        self.passes.setData(times[~failed], scores[~failed])
        self.fails.setData(times[failed], scores[failed])

    def set_cut(self, value: float | None) -> None:
        """Move the threshold line (None hides it)."""
        self.cut_line.setVisible(value is not None)
        if value is not None:
            self.cut_line.setValue(float(value))

    def point_counts(self) -> tuple[int, int]:
        """(passes, fails) drawn now (for tests)."""
        return len(self.passes.data), len(self.fails.data)

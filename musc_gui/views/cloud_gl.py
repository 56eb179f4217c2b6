"""The OpenGL side of the 3D view: a GL widget that reports clicks and its own failure, picking.

Projection and picking are plain numpy (tested without OpenGL). :class:`PickingGLView` catches
errors of its first initialisation and paints (pyqtgraph would print them on every frame and
keep painting) and reports them once through ``failed``, so the view can fall back to a
message; :func:`musc_gui.views.gl_check.opengl_problem` catches most machines before that.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph.opengl as gl
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QMouseEvent


def point_at_pixel(pixel_index: np.ndarray, pixel: int) -> int:
    """Index of the point that comes from map-grid ``pixel``, or -1 when it is background."""
    if pixel < 0:
        return -1
    hits = np.flatnonzero(pixel_index == pixel)
    return int(hits[0]) if len(hits) else -1


def pixel_of_point(pixel_index: np.ndarray, point: int) -> int:
    """Map-grid pixel a point comes from (-1 for none)."""
    return int(pixel_index[point]) if 0 <= point < len(pixel_index) else -1


def project_points(pos: np.ndarray, mvp: np.ndarray, width: float, height: float):
    """Widget (x, y) and clip depth of display positions through a 4x4 model-view-projection.

    Returns:
        (P, 2) screen positions (origin top-left) and (P,) depth (NaN behind the camera).
    """
    homog = np.c_[pos, np.ones(len(pos))] @ mvp.T
    w = homog[:, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        ndc = homog[:, :3] / w[:, None]
    screen = np.c_[(ndc[:, 0] + 1) * 0.5 * width, (1 - ndc[:, 1]) * 0.5 * height]
    depth = np.where(w > 0, ndc[:, 2], np.nan)
    return screen, depth


def pick_point(screen: np.ndarray, depth: np.ndarray, click: tuple[float, float],
               radius: float = 6.0) -> int:  # fmt: skip
    """The point nearest the camera among those within ``radius`` px of ``click``; -1 if none."""
    if not len(screen):
        return -1
    near = np.hypot(screen[:, 0] - click[0], screen[:, 1] - click[1]) <= radius
    near &= np.isfinite(depth)
    if not near.any():
        return -1
    candidates = np.flatnonzero(near)
    return int(candidates[np.argmin(depth[candidates])])


class PickingGLView(gl.GLViewWidget):
    """GLViewWidget that reports a left click that did not rotate the view, and GL failure.

    Signals:
        clicked(float, float): widget position of a click.
        failed(str): OpenGL failed to initialise or paint (emitted once, after the paint).
    """

    clicked = Signal(float, float)
    failed = Signal(str)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.broken: str | None = None
        self._press = None

    def report_failure(self, error: BaseException) -> None:
        """Stop painting and tell the view (queued: we may be inside paintGL)."""
        if self.broken is None:
            self.broken = f"{type(error).__name__}: {error}"
            QTimer.singleShot(0, lambda: self.failed.emit(self.broken))

    def initializeGL(self) -> None:
        """Qt override: pyqtgraph's set-up, failures reported instead of raised."""
        try:
            super().initializeGL()
        except Exception as error:  # any GL failure means: no 3D view on this machine
            self.report_failure(error)

    def paintGL(self) -> None:
        """Qt override: paint unless OpenGL already failed here."""
        if self.broken is not None:
            return
        try:
            super().paintGL()
        except Exception as error:  # see initializeGL
            self.report_failure(error)

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        """Remember where a possible click started."""
        self._press = ev.position()
        super().mousePressEvent(ev)

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        """A release near the press is a click (a drag rotates the view)."""
        if self._press is not None and ev.button() == Qt.MouseButton.LeftButton:
            if (ev.position() - self._press).manhattanLength() < 4:
                self.clicked.emit(ev.position().x(), ev.position().y())
        super().mouseReleaseEvent(ev)

    def mvp(self) -> np.ndarray:
        """Current model-view-projection as a numpy 4x4 (row-major, column vectors)."""
        viewport = self.getViewport()
        matrix = self.projectionMatrix(viewport, viewport) * self.viewMatrix()
        return np.array(matrix.data(), dtype=np.float64).reshape(4, 4).T


class CheckedScatter(gl.GLScatterPlotItem):
    """Scatter item whose paint errors reach the view's ``failed`` instead of stdout."""

    def paint(self) -> None:
        """Paint; on a GL error report it once and draw nothing more."""
        view = self.view()
        if view is not None and getattr(view, "broken", None) is not None:
            return
        try:
            super().paint()
        except Exception as error:  # pyqtgraph would print this on every frame
            if isinstance(view, PickingGLView):
                view.report_failure(error)

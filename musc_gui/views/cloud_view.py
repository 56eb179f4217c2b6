"""3D view: the current sample's foreground points coloured by anomaly score or by RGB.

The colouring, greying and pixel <-> point logic are plain functions (tested without OpenGL);
the widget only uploads positions on a sample change and colours on an option change.
Display coordinates are sensor coordinates turned 180 degrees about x (a proper rotation, no
mirror), so that z points up towards the sensor and the top view matches the 2D image.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pyqtgraph.opengl as gl
from OpenGL import GL
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.data.readers import read_rgb
from engine.errors import InvalidInputError
from engine.session.results import PointScores
from musc_gui.state import AppState
from musc_gui.views.image_view import COLORMAPS

GREY = (0.55, 0.55, 0.55, 1.0)
COLOUR_MODES = ("score", "rgb")
_ON_TOP = {GL.GL_DEPTH_TEST: False, GL.GL_BLEND: True,
           "glBlendFunc": (GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA)}  # fmt: skip


def display_coords(xyz: np.ndarray) -> np.ndarray:
    """Centred display positions: (x, -y, -z) about the centroid, float32."""
    pos = np.asarray(xyz, dtype=np.float32) * np.array([1.0, -1.0, -1.0], dtype=np.float32)
    return pos - pos.mean(axis=0) if len(pos) else pos


def point_levels(points: list[PointScores | None]) -> tuple[float, float]:
    """Score levels over the points of all samples (one scale for every part)."""
    scores = [p.scores for p in points if p is not None and len(p.scores)]
    if not scores:
        return 0.0, 1.0
    low = float(min(s.min() for s in scores))
    high = float(max(s.max() for s in scores))
    return low, high if high > low else low + 1e-6


def score_colors(scores: np.ndarray, levels: tuple[float, float], cmap: pg.ColorMap) -> np.ndarray:
    """(P, 4) float32 RGBA of scores through ``cmap`` between ``levels`` (clipped)."""
    low, high = levels
    t = np.clip((np.asarray(scores, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    return np.asarray(cmap.map(t, mode="float"), dtype=np.float32).reshape(len(t), 4)


def rgb_colors(rgb: np.ndarray, pixel_index: np.ndarray, grid: int) -> np.ndarray:
    """(P, 4) float32 RGBA of the image pixel under each point's S x S grid cell (nearest)."""
    height, width = rgb.shape[:2]
    row, col = np.divmod(np.asarray(pixel_index, dtype=np.int64), grid)
    y = np.minimum(((row + 0.5) * height / grid).astype(np.int64), height - 1)
    x = np.minimum(((col + 0.5) * width / grid).astype(np.int64), width - 1)
    colours = np.ones((len(row), 4), dtype=np.float32)
    colours[:, :3] = rgb[y, x, :3] / 255.0
    return colours


def grey_below(colors: np.ndarray, scores: np.ndarray, lower: float) -> np.ndarray:
    """Copy of ``colors`` with the points scoring below ``lower`` greyed out."""
    out = np.array(colors, dtype=np.float32, copy=True)
    out[np.asarray(scores) < lower] = GREY
    return out


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
    """GLViewWidget that reports a left click that did not rotate the view."""

    clicked = Signal(float, float)

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        self._press = ev.position()
        super().mousePressEvent(ev)

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        press = getattr(self, "_press", None)
        if press is not None and ev.button() == Qt.MouseButton.LeftButton:
            if (ev.position() - press).manhattanLength() < 4:
                self.clicked.emit(ev.position().x(), ev.position().y())
        super().mouseReleaseEvent(ev)

    def mvp(self) -> np.ndarray:
        """Current model-view-projection as a numpy 4x4 (row-major, column vectors)."""
        viewport = self.getViewport()
        matrix = self.projectionMatrix(viewport, viewport) * self.viewMatrix()
        return np.array(matrix.data(), dtype=np.float64).reshape(4, 4).T


class CloudView(QWidget):
    """Point cloud of ``state.current``; click a point to point its pixel (``set_pointed``)."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._points: PointScores | None = None
        self._pos = np.zeros((0, 3), dtype=np.float32)
        self._rgb: np.ndarray | None = None
        self._levels = (0.0, 1.0)
        self.colors = np.zeros((0, 4), dtype=np.float32)
        self._build()
        state.result_changed.connect(self._on_result_changed)
        state.current_changed.connect(self._on_current_changed)
        state.pointed_changed.connect(self._on_pointed_changed)
        self._on_result_changed(state.result)

    def _build(self) -> None:
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(COLOUR_MODES)
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(COLORMAPS)
        self.lower_spin = QDoubleSpinBox()
        self.lower_spin.setDecimals(4)
        self.lower_spin.setToolTip("Points scoring below this are greyed out")
        self.size_spin = QDoubleSpinBox()
        self.size_spin.setRange(1.0, 10.0)
        self.size_spin.setValue(4.0)
        self.size_spin.setToolTip("Point size in screen pixels")
        self.top_button = QPushButton("Sensor view")
        self.top_button.setToolTip("Look at the part from the sensor, as in the 2D view")
        controls = QHBoxLayout()
        labelled = (("Colour", self.mode_combo), ("Colormap", self.colormap_combo),
                    ("Grey below", self.lower_spin), ("Size", self.size_spin))  # fmt: skip
        for label, widget in labelled:
            controls.addWidget(QLabel(label))
            controls.addWidget(widget)
        controls.addWidget(self.top_button)
        controls.addStretch(1)

        self.gl_view = PickingGLView()
        self.gl_view.setBackgroundColor((20, 20, 24))
        self.scatter = gl.GLScatterPlotItem(pos=np.zeros((0, 3)), size=4.0, pxMode=True)
        self.scatter.setGLOptions("opaque")
        self.marker = gl.GLScatterPlotItem(pos=np.zeros((0, 3)), size=16.0, pxMode=True,
                                           color=(0.0, 1.0, 1.0, 0.9))  # fmt: skip
        self.marker.setGLOptions(_ON_TOP)
        self.marker.setDepthValue(10)
        self.gl_view.addItem(self.scatter)
        self.gl_view.addItem(self.marker)
        self.message = QLabel("No sample selected")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.gl_view)
        self.stack.addWidget(self.message)
        self.info_label = QLabel("")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.info_label)

        self.mode_combo.currentTextChanged.connect(self._recolour)
        self.colormap_combo.currentTextChanged.connect(self._recolour)
        self.lower_spin.valueChanged.connect(self._recolour)
        self.size_spin.valueChanged.connect(lambda size: self.scatter.setData(size=size))
        self.top_button.clicked.connect(lambda: self.reset_camera(elevation=90.0))
        self.gl_view.clicked.connect(self.pick_at)

    @property
    def has_points(self) -> bool:
        """Whether the current sample has 3D points on display."""
        return self._points is not None

    # ---- state -> view ----------------------------------------------------------------
    def _on_result_changed(self, result: object) -> None:
        result = self.state.result
        self._levels = point_levels(result.points) if result is not None else (0.0, 1.0)
        low, high = self._levels
        self.lower_spin.blockSignals(True)
        self.lower_spin.setRange(low, high)
        self.lower_spin.setSingleStep(max((high - low) / 100.0, 1e-4))
        self.lower_spin.setValue(low)  # nothing greyed until the user asks
        self.lower_spin.blockSignals(False)
        self._on_current_changed(self.state.current)

    def _on_current_changed(self, index: int) -> None:
        result = self.state.result
        self._points, self._rgb = None, None
        self.marker.setData(pos=np.zeros((0, 3)))
        if result is None or not 0 <= index < len(result.samples):
            return self._show_message("No sample selected")
        points = result.points[index] if index < len(result.points) else None
        if points is None or not len(points.xyz):
            return self._show_message(
                f"{result.samples[index].name}: no 3D points (no usable XYZ map for this sample)"
            )
        self._points = points
        self._pos = display_coords(points.xyz)
        sample = result.samples[index]
        if sample.rgb_path is not None:
            try:
                self._rgb = read_rgb(sample.rgb_path)
            except InvalidInputError:
                self._rgb = None
        self.mode_combo.model().item(1).setEnabled(self._rgb is not None)
        self.stack.setCurrentWidget(self.gl_view)
        self.scatter.setData(pos=self._pos, color=self._compute_colors())
        self.reset_camera()
        self.info_label.setText(f"{sample.name}: {len(self._pos)} points; click one to point it")
        self._on_pointed_changed(self.state.pointed)

    def _show_message(self, text: str) -> None:
        self._pos = np.zeros((0, 3), dtype=np.float32)
        self.colors = np.zeros((0, 4), dtype=np.float32)
        self.scatter.setData(pos=self._pos, color=self.colors)
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)
        self.info_label.setText("")

    def _on_pointed_changed(self, pixel: int) -> None:
        if self._points is None:
            return
        point = point_at_pixel(self._points.pixel_index, pixel)
        if point < 0:
            self.marker.setData(pos=np.zeros((0, 3)))
            if pixel >= 0:
                self.info_label.setText("No 3D point at the pointed pixel (background)")
            return
        self.marker.setData(pos=self._pos[point : point + 1])
        x, y, z = self._points.xyz[point]
        self.info_label.setText(
            f"point {point}: x {x:.4f}, y {y:.4f}, z {z:.4f} m   "
            f"score {self._points.scores[point]:.4f}"
        )

    @property
    def marked_point(self) -> int:
        """The point under the pointed pixel, -1 for none."""
        if self._points is None:
            return -1
        return point_at_pixel(self._points.pixel_index, self.state.pointed)

    # ---- colours ----------------------------------------------------------------------
    def _compute_colors(self) -> np.ndarray:
        points = self._points
        if self.mode_combo.currentText() == "rgb" and self._rgb is not None:
            grid = self.state.result.maps.shape[1]
            colors = rgb_colors(self._rgb, points.pixel_index, grid)
        else:
            cmap = pg.colormap.get(self.colormap_combo.currentText())
            colors = score_colors(points.scores, self._levels, cmap)
        self.colors = grey_below(colors, points.scores, self.lower_spin.value())
        return self.colors

    def _recolour(self, *_: object) -> None:
        if self._points is not None:  # colours only: positions stay on the GPU
            self.scatter.setData(color=self._compute_colors())

    # ---- camera and picking -----------------------------------------------------------
    def reset_camera(self, elevation: float = 60.0) -> None:
        """Frame the points; azimuth -90 keeps image x to the right and image y down."""
        extent = float(np.ptp(self._pos, axis=0).max()) if len(self._pos) else 1.0
        self.gl_view.setCameraPosition(pos=pg.Vector(0, 0, 0), distance=1.6 * extent,
                                       elevation=elevation, azimuth=-90)  # fmt: skip

    def pick_at(self, x: float, y: float) -> int:
        """Point the pixel of the point under widget position (x, y); returns the point or -1."""
        if self._points is None:
            return -1
        screen, depth = project_points(self._pos, self.gl_view.mvp(),
                                       self.gl_view.width(), self.gl_view.height())  # fmt: skip
        point = pick_point(screen, depth, (x, y))
        if point >= 0:
            self.state.set_pointed(pixel_of_point(self._points.pixel_index, point))
        return point

    def screen_position(self, point: int) -> QPointF:
        """Widget position of a point under the current camera (for tests and tooltips)."""
        screen, _ = project_points(self._pos[point : point + 1], self.gl_view.mvp(),
                                   self.gl_view.width(), self.gl_view.height())  # fmt: skip
        return QPointF(float(screen[0, 0]), float(screen[0, 1]))

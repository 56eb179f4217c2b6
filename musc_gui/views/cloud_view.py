"""3D view: the current part's points coloured by a chosen score, greyed below the pixel cut, lit.

The colouring rules are plain functions (``cloud_colors``); the widget uploads positions on a
part change and only colours on an option change. Display coordinates are sensor coordinates
turned 180 degrees about x (a proper rotation, no mirror), so that z points up towards the
sensor and the top view matches the 2D image. Where OpenGL is unusable
(:func:`opengl_problem`) no GL widget is made: the tab shows why, and the rest of the app works.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from OpenGL import GL
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import (
    QCheckBox,
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
from musc_gui.views.cloud_colors import (
    GREY,
    SCORE_LABELS,
    display_coords,
    grey_below,
    point_levels,
    point_shading,
    point_values,
    rgb_colors,
    score_choices,
    score_colors,
    score_maps,
    shade,
    value_levels,
)
from musc_gui.views.cloud_gl import (
    CheckedScatter,
    PickingGLView,
    pick_point,
    pixel_of_point,
    point_at_pixel,
    project_points,
)
from musc_gui.views.flow_layout import FlowLayout, labelled
from musc_gui.views.gl_check import opengl_problem, unavailable_text
from musc_gui.views.image_view import COLORMAPS

__all__ = ["GREY", "CloudView", "display_coords", "grey_below", "opengl_problem",
           "pick_point", "pixel_of_point", "point_at_pixel", "point_levels", "project_points",
           "rgb_colors", "score_colors", "unavailable_text"]  # fmt: skip
COLOUR_MODES = ("score", "rgb")
SCALES = ("global", "per part")
GREY_TIP = (
    "Grey: points outside the decision's defect pixels, i.e. where the fused 2D+3D map is\n"
    "below the pixel cut. The same rule holds whichever score is shown (the cut is in fused\n"
    "units), so switching to 2D or 3D shows which branch saw the coloured points."
)
_ON_TOP = {GL.GL_DEPTH_TEST: False, GL.GL_BLEND: True,
           "glBlendFunc": (GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA)}  # fmt: skip


class CloudView(QWidget):
    """Point cloud of ``state.current``; click a point to point its pixel (``set_pointed``).

    Attributes:
        gl_problem: Why OpenGL cannot be used here, or None. With a problem the view is a
            message and has no ``gl_view`` attribute (no GL widget is ever created).
        colors: (P, 4) RGBA of the points on display; ``values`` the score they show.
    """

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._points: PointScores | None = None
        self._pos = np.zeros((0, 3), dtype=np.float32)
        self._rgb: np.ndarray | None = None
        self._brightness: np.ndarray | None = None
        self._global_levels: dict[tuple, tuple[float, float]] = {}
        self.colors = np.zeros((0, 4), dtype=np.float32)
        self.values = np.zeros(0)
        self.gl_problem = opengl_problem()
        self._build_controls()
        self.message = QLabel("No sample selected")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message)
        self.info_label = QLabel("")
        self.info_label.setWordWrap(True)
        middle = QHBoxLayout()
        middle.addWidget(self.stack, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.controls)
        layout.addLayout(middle, 1)
        layout.addWidget(self.info_label)
        if self.gl_problem is not None:
            self.controls.hide()
            self.message.setText(unavailable_text(self.gl_problem))
            return  # nothing else: no GL widget, no signals, the app goes on without 3D
        self._build_gl()
        middle.addWidget(self.bar_widget)
        state.result_changed.connect(self._on_result_changed)
        state.decision_changed.connect(self._on_decision_changed)
        state.current_changed.connect(self._on_current_changed)
        state.pointed_changed.connect(self._on_pointed_changed)
        self._on_result_changed(state.result)

    def _build_controls(self) -> None:
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(COLOUR_MODES)
        self.score_combo = QComboBox()
        self.scale_combo = QComboBox()
        self.scale_combo.addItems(SCALES)
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(COLORMAPS)
        self.grey_check = QCheckBox("Grey below cut")
        self.grey_check.setChecked(True)
        self.grey_check.setToolTip(GREY_TIP)
        self.shade_check = QCheckBox("Shaded")
        self.shade_check.setChecked(True)
        self.shade_check.setToolTip("Light the points by their surface normal so the shape reads")
        self.size_spin = QDoubleSpinBox()
        self.size_spin.setRange(1.0, 10.0)
        self.size_spin.setValue(4.0)
        self.top_button = QPushButton("Sensor view")
        self.top_button.setToolTip("Look at the part from the sensor, as in the 2D view")
        self.controls = QWidget()
        flow = FlowLayout(self.controls)
        flow.addWidget(labelled("Score shown:", self.score_combo, (
            "fused 2D+3D: the map the decision cuts; 2D / 3D: one branch's own map.\n"
            "Each point shows the map value of its pixel.\n" + GREY_TIP)))  # fmt: skip
        flow.addWidget(labelled("Colour", self.mode_combo, "score colours or the image's RGB"))
        flow.addWidget(labelled("Scale", self.scale_combo, (
            "global: one scale for the run (as the 2D view), parts compare;\n"
            "per part: this part's own lowest to highest value")))  # fmt: skip
        flow.addWidget(labelled("Colormap", self.colormap_combo))
        flow.addWidget(self.grey_check)
        flow.addWidget(self.shade_check)
        flow.addWidget(labelled("Size", self.size_spin, "Point size in screen pixels"))
        flow.addWidget(self.top_button)

    def _build_gl(self) -> None:
        self.gl_view = PickingGLView()
        self.gl_view.setBackgroundColor((20, 20, 24))
        self.scatter = CheckedScatter(pos=np.zeros((0, 3)), size=4.0, pxMode=True)
        self.scatter.setGLOptions("opaque")
        self.marker = CheckedScatter(pos=np.zeros((0, 3)), size=16.0, pxMode=True,
                                     color=(0.0, 1.0, 1.0, 0.9))  # fmt: skip
        self.marker.setGLOptions(_ON_TOP)
        self.marker.setDepthValue(10)
        self.gl_view.addItem(self.scatter)
        self.gl_view.addItem(self.marker)
        self.stack.addWidget(self.gl_view)
        self.bar_widget = pg.GraphicsLayoutWidget()
        self.bar_widget.setFixedWidth(80)
        self.color_bar = pg.ColorBarItem(values=(0, 1), interactive=False, width=14,
                                         colorMapMenu=False)  # fmt: skip
        self.cut_line = pg.InfiniteLine(angle=0, pen=pg.mkPen((0, 230, 255), width=2))
        self.color_bar.addItem(self.cut_line)
        self.bar_widget.addItem(self.color_bar)
        for widget in (self.mode_combo, self.score_combo, self.scale_combo, self.colormap_combo):
            widget.currentIndexChanged.connect(self._recolour)
        self.grey_check.toggled.connect(self._recolour)
        self.shade_check.toggled.connect(self._recolour)
        self.size_spin.valueChanged.connect(lambda size: self.scatter.setData(size=size))
        self.top_button.clicked.connect(lambda: self.reset_camera(elevation=90.0))
        self.gl_view.clicked.connect(self.pick_at)
        self.gl_view.failed.connect(self._gl_failed)

    @property
    def has_points(self) -> bool:
        """Whether the current sample has 3D points on display."""
        return self._points is not None

    # ---- state -> view ----------------------------------------------------------------
    def _on_result_changed(self, result: object) -> None:
        result = self.state.result
        self._global_levels.clear()
        chosen = self.score_combo.currentData()
        self.score_combo.blockSignals(True)
        self.score_combo.clear()
        for key in score_choices(result) if result is not None else []:
            self.score_combo.addItem(SCORE_LABELS[key], key)
        self.score_combo.setCurrentIndex(max(self.score_combo.findData(chosen), 0))
        self.score_combo.blockSignals(False)
        self._on_current_changed(self.state.current)

    def _on_decision_changed(self, decision: object) -> None:
        self._global_levels.clear()
        self._recolour()

    def _on_current_changed(self, index: int) -> None:
        result = self.state.result
        self._points, self._rgb, self._brightness = None, None, None
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
        self._brightness = point_shading(points, result.maps.shape[1])
        sample = result.samples[index]
        if sample.rgb_path is not None:
            try:
                self._rgb = read_rgb(sample.rgb_path)
            except InvalidInputError:
                self._rgb = None
        self.mode_combo.model().item(1).setEnabled(self._rgb is not None)
        if self.gl_view.broken is None:
            self.stack.setCurrentWidget(self.gl_view)
        self.scatter.setData(pos=self._pos, color=self._compute_colors())
        self.reset_camera()
        self.info_label.setText(f"{sample.name}: {len(self._pos)} points; click one to point it")
        self._on_pointed_changed(self.state.pointed)

    def _show_message(self, text: str) -> None:
        self._pos = np.zeros((0, 3), dtype=np.float32)
        self.colors = np.zeros((0, 4), dtype=np.float32)
        self.values = np.zeros(0)
        self.scatter.setData(pos=self._pos, color=self.colors)
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)
        self.bar_widget.setVisible(False)
        self.info_label.setText("")

    def _gl_failed(self, reason: str) -> None:
        self.controls.hide()
        self.bar_widget.hide()
        self.message.setText(unavailable_text(f"OpenGL failed while drawing ({reason})"))
        self.stack.setCurrentWidget(self.message)

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
        shown = self.score_combo.currentText() or "score"
        self.info_label.setText(f"point {point}: x {x:.4f}, y {y:.4f}, z {z:.4f} m   "
                                f"{shown} {self.values[point]:.4f}")  # fmt: skip

    @property
    def marked_point(self) -> int:
        """The point under the pointed pixel, -1 for none."""
        if self._points is None:
            return -1
        return point_at_pixel(self._points.pixel_index, self.state.pointed)

    # ---- colours ----------------------------------------------------------------------
    def levels(self, choice: str, values: np.ndarray) -> tuple[float, float]:
        """Colour levels of a score choice for the current part (global ones cached per run)."""
        result, decision = self.state.result, self.state.decision
        cut = decision.pixel.value if decision is not None and choice == "fused" else None
        scale = self.scale_combo.currentText()
        if scale != "global":
            return value_levels(result.maps, values, scale, cut)
        key = (choice, cut)
        if key not in self._global_levels:  # the median reads every map: once per run and cut
            self._global_levels[key] = value_levels(score_maps(result, choice), values,
                                                    scale, cut)  # fmt: skip
        return self._global_levels[key]

    def _compute_colors(self) -> np.ndarray:
        result, points, index = self.state.result, self._points, self.state.current
        decision = self.state.decision
        choice = self.score_combo.currentData() or "fused"
        fused = point_values(result.maps, index, points)
        self.values = fused if choice == "fused" else point_values(
            score_maps(result, choice), index, points)  # fmt: skip
        rgb_mode = self.mode_combo.currentText() == "rgb" and self._rgb is not None
        if rgb_mode:
            colors = rgb_colors(self._rgb, points.pixel_index, result.maps.shape[1])
        else:
            levels = self.levels(choice, self.values)
            cmap = pg.colormap.get(self.colormap_combo.currentText())
            colors = score_colors(self.values, levels, cmap)
            self._show_bar(levels, cmap, decision.pixel.value if decision and
                           choice == "fused" else None)  # fmt: skip
        self.bar_widget.setVisible(not rgb_mode)
        if self.grey_check.isChecked() and decision is not None:
            colors = grey_below(colors, fused, decision.pixel.value)
        self.colors = shade(colors, self._brightness if self.shade_check.isChecked() else None)
        return self.colors

    def _show_bar(self, levels: tuple[float, float], cmap: pg.ColorMap, cut: float | None):
        self.color_bar.setColorMap(cmap)
        self.color_bar.setLevels(levels)
        share = None if cut is None else (cut - levels[0]) / (levels[1] - levels[0])
        self.cut_line.setVisible(share is not None and 0.0 <= share <= 1.0)  # off the scale: none
        if share is not None:  # the bar's own y runs 0..256 over the levels
            self.cut_line.setValue(256.0 * min(max(share, 0.0), 1.0))

    def _recolour(self, *_: object) -> None:
        # a decision can change before this view hears of a cleared result (signal order)
        if self._points is not None and self.state.result is None:
            return self._on_current_changed(self.state.current)
        if self._points is not None:  # colours only: positions stay on the GPU
            self.scatter.setData(color=self._compute_colors())
            self._on_pointed_changed(self.state.pointed)

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

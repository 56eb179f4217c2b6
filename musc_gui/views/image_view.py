"""2D view: the current part's image, its heatmap, its defect outline and a cursor readout.

Everything drawn comes from the decision in force (``state.decision``): the cyan outline is
``decision.defects(result, index, xyz)``'s mask, the same mask the export writes and whose area
is reported, and the heatmap's colour scale keeps the pixel cut inside it. The view computes no
threshold; per part it only resizes the map, cuts it (a few ms) and traces outlines.
"""

from __future__ import annotations

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QSlider, QVBoxLayout, QWidget

from engine.data.readers import read_mask, read_rgb
from engine.decision.batch import part_xyz
from engine.decision.display import COLORMAP
from engine.decision.regions import PartDefects
from engine.errors import InvalidInputError
from musc_gui.state import AppState
from musc_gui.views.flow_layout import FlowLayout, labelled
from musc_gui.views.heatmap import (
    SCALES,
    displayed_map,
    grid_pixel,
    measured,
    pixel_centre,
    regions_text,
    view_levels,
)

COLORMAPS = (COLORMAP, "viridis", "turbo", "magma")
DEFECT_PEN = pg.mkPen((0, 230, 255), width=2)  # cyan: what the decision found
TRUTH_PEN = pg.mkPen((60, 255, 60), width=2, style=Qt.PenStyle.DashLine)  # green: ground truth
OPACITY_MIN_WIDTH = 120  # px: a slider narrower than this cannot be set with any precision
DEFAULT_OPACITY = 65  # % : with the alpha ramp below, the same look as the exported overlay


def heatmap_lut(name: str) -> np.ndarray:
    """(256, 4) uint8 RGBA table: the colormap with alpha rising as sqrt (faint low values)."""
    lut = pg.colormap.get(name).getLookupTable(nPts=256, alpha=True)
    lut[:, 3] = np.round(255 * np.sqrt(np.linspace(0.0, 1.0, 256)))
    return lut


def outline_path(mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every boundary of ``mask`` (outer and holes), NaN-separated, in image units.

    cv2 puts contour vertices on pixel indices; pixel i spans [i, i + 1] on screen, so + 0.5.
    """
    if mask is None or not mask.any():
        return np.zeros(0), np.zeros(0)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    pieces = [np.vstack([c[:, 0, :], c[:1, 0, :], [[np.nan, np.nan]]]) for c in contours]
    xy = np.vstack(pieces).astype(np.float64) + 0.5
    return xy[:, 0], xy[:, 1]


class ImageView(QWidget):
    """Image + heatmap + outlines of ``state.current``; click points a pixel (``set_pointed``).

    Attributes:
        defects: The current part's defect regions under ``state.decision`` (None without).
        heatmap_action: Checkable "Show heatmap" action, shortcut H.
    """

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._map: np.ndarray | None = None  # S x S map: cursor readout and pointing
        self._image_size: tuple[int, int] = (1, 1)
        self._full: np.ndarray | None = None  # the map at image size (what is drawn)
        self._foreground: np.ndarray | None = None
        self._xyz: np.ndarray | None = None
        self._truth: np.ndarray | None = None
        self._levels_cache: dict[tuple, tuple[float, float]] = {}
        self.defects: PartDefects | None = None
        self._build_controls()
        self._build_plot()
        self.regions_label = QLabel("")
        self.regions_label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.controls)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.regions_label)
        layout.addWidget(self.cursor_label)
        state.result_changed.connect(self._on_result_changed)
        state.decision_changed.connect(self._on_decision_changed)
        state.current_changed.connect(self._on_current_changed)
        state.pointed_changed.connect(self._on_pointed_changed)
        self._on_result_changed(state.result)

    # ---- construction -------------------------------------------------------------------
    def _build_controls(self) -> None:
        self.heatmap_action = QAction("Show heatmap", self, checkable=True, checked=True)
        self.heatmap_action.setShortcut(QKeySequence("H"))
        self.heatmap_action.setToolTip("Show or hide the anomaly heatmap (H)")
        self.addAction(self.heatmap_action)  # H works whenever the 2D view is on screen
        self.heatmap_check = QCheckBox("Heatmap (H)")
        self.heatmap_check.setChecked(True)
        self.heatmap_check.setToolTip(self.heatmap_action.toolTip())
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(COLORMAPS)
        self.norm_combo = QComboBox()
        self.norm_combo.addItems(SCALES)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(DEFAULT_OPACITY)
        self.opacity_slider.setMinimumWidth(OPACITY_MIN_WIDTH)
        self.defects_check = QCheckBox("Defects (cyan)")
        self.defects_check.setChecked(True)
        self.defects_check.setToolTip(
            "Outline of the defect regions of the decision in force: the pixel cut and the\n"
            "minimum area. The exported mask and the reported areas are the same regions."
        )
        self.gt_check = QCheckBox("Ground truth (green)")
        self.gt_check.setChecked(True)
        self.gt_check.setToolTip("Outline of the ground-truth defect mask, where the part has one")
        self.controls = QWidget()
        flow = FlowLayout(self.controls)
        flow.addWidget(self.heatmap_check)
        flow.addWidget(labelled("Colormap", self.colormap_combo, "Colormap of the heatmap"))
        flow.addWidget(labelled("Scale", self.norm_combo, (
            "global: one scale for the whole run, from the normal level (median of all maps)\n"
            "to the highest value, so good parts stay quiet and parts compare;\n"
            "per image: this part's own median to maximum")))  # fmt: skip
        flow.addWidget(labelled("Opacity", self.opacity_slider, "Heatmap opacity"))
        flow.addWidget(self.defects_check)
        flow.addWidget(self.gt_check)
        self.heatmap_action.toggled.connect(self.heatmap_check.setChecked)
        self.heatmap_check.toggled.connect(self.heatmap_action.setChecked)
        self.heatmap_action.toggled.connect(self._apply_visibility)
        self.colormap_combo.currentTextChanged.connect(self._apply_colormap)
        self.norm_combo.currentTextChanged.connect(self._draw_heatmap)
        self.opacity_slider.valueChanged.connect(self._apply_visibility)
        self.defects_check.toggled.connect(self._apply_visibility)
        self.gt_check.toggled.connect(self._draw_truth)

    def _build_plot(self) -> None:
        self.graphics = pg.GraphicsLayoutWidget()
        self.view_box = self.graphics.addViewBox(row=0, col=0, lockAspect=True, invertY=True)
        self.view_box.setMenuEnabled(False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")  # NaN pixels are transparent
        self.overlay_item.setZValue(1)
        self.defect_curve = pg.PlotCurveItem(pen=DEFECT_PEN, connect="finite")
        self.defect_curve.setZValue(3)
        self.gt_curve = pg.PlotCurveItem(pen=TRUTH_PEN, connect="finite")
        self.gt_curve.setZValue(2)
        self.marker = pg.ScatterPlotItem(size=16, symbol="o", pen=pg.mkPen("w", width=2),
                                         brush=None)  # fmt: skip
        self.marker.setZValue(4)
        for item in (self.image_item, self.overlay_item, self.gt_curve, self.defect_curve,
                     self.marker):  # fmt: skip
            self.view_box.addItem(item)
        self.color_bar = pg.ColorBarItem(values=(0, 1), interactive=False, width=14,
                                         colorMapMenu=False)  # fmt: skip
        self.cut_line = pg.InfiniteLine(angle=0, pen=pg.mkPen((0, 230, 255), width=2))
        self.cut_line.setToolTip("pixel cut")
        self.color_bar.addItem(self.cut_line)
        self.graphics.addItem(self.color_bar, row=0, col=1)
        self.cursor_label = QLabel("No sample selected")
        scene = self.graphics.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)
        self._apply_colormap()
        self._apply_visibility()

    # ---- state -> view ----------------------------------------------------------------
    def _on_result_changed(self, result: object) -> None:
        self._levels_cache.clear()
        self._on_current_changed(self.state.current)

    def _on_decision_changed(self, decision: object) -> None:
        self._levels_cache.clear()
        self._cut_part()
        self._draw_heatmap()

    def _on_current_changed(self, index: int) -> None:
        result = self.state.result
        self._truth = self._xyz = self._foreground = self._full = None
        if result is None or not 0 <= index < len(result.samples):
            self._map, self.defects = None, None
            for item in (self.image_item, self.overlay_item):
                item.clear()
            for curve in (self.defect_curve, self.gt_curve):
                curve.setData([], [])
            self.marker.setData([])
            self.regions_label.setText("")
            self.cursor_label.setText("No sample selected")
            return
        sample = result.samples[index]
        self._image_size = tuple(result.image_sizes[index])
        notes = []
        rgb = self._read(read_rgb, sample.rgb_path, notes)
        if rgb is None:
            self.image_item.clear()
        else:
            self.image_item.setImage(rgb, autoLevels=False, levels=(0, 255))
        try:  # the export's reader, so that areas in mm² and the mm² filter agree with it
            self._xyz = part_xyz(result, index)
        except (InvalidInputError, OSError) as err:
            self._xyz = None
            notes.append(f"areas in px only ({err})")
        self._foreground = measured(self._xyz)
        self._truth = self._read(read_mask, sample.mask_path, notes, self._image_size)
        self._map = result.maps[index]
        self._full = result.anomaly_map(index)  # the resolution the regions are cut at
        self.gt_check.setEnabled(self._truth is not None)
        self._cut_part()
        self._draw_heatmap()
        self._draw_truth()
        self._on_pointed_changed(self.state.pointed)
        self.view_box.autoRange(padding=0.02)
        self.cursor_label.setText("; ".join(notes) or f"{sample.name}: move the cursor over it")

    @staticmethod
    def _read(reader, path, notes: list[str], *size) -> np.ndarray | None:
        if path is None:
            return None
        try:
            return reader(path, *size)
        except InvalidInputError as err:  # one bad file must not blank the whole view
            notes.append(str(err))
            return None

    def _cut_part(self) -> None:
        """The decision's defect regions of the current part, outlined and summarised."""
        result, decision, index = self.state.result, self.state.decision, self.state.current
        if self._map is None or result is None:
            return
        self.defects = None if decision is None else decision.defects(result, index, self._xyz)
        self.defect_curve.setData(*outline_path(None if self.defects is None else
                                                self.defects.mask))  # fmt: skip
        text = regions_text(self.defects)
        if decision is not None:
            score = float(result.image_scores[index])
            verdict = "FAIL" if score >= decision.image.value else "pass"
            sign = "≥" if verdict == "FAIL" else "<"
            text = f"{verdict}: score {score:.4f} {sign} cut {decision.image.value:.4f}. {text}"
        self.regions_label.setText(text)

    def _on_pointed_changed(self, pixel: int) -> None:
        if self._map is None or pixel < 0:
            self.marker.setData([])
            return
        x, y = pixel_centre(pixel, self._map.shape[0], self._image_size)
        self.marker.setData([x], [y])

    # ---- display options --------------------------------------------------------------
    def levels(self) -> tuple[float, float]:
        """Colour levels of the current part under the chosen scale (see ``view_levels``)."""
        result, decision = self.state.result, self.state.decision
        scale = self.norm_combo.currentText()
        cut = None if decision is None else decision.pixel.value
        key = (scale, cut, self.state.current if scale != "global" else -1)
        if key not in self._levels_cache:  # the global median reads every map: once per run
            self._levels_cache[key] = view_levels(result.maps, self.state.current, scale, cut)
        return self._levels_cache[key]

    def _draw_heatmap(self, *_: object) -> None:
        if self._full is None or self.state.result is None:
            return
        low, high = self.levels()
        height, width = self._image_size
        self.overlay_item.setImage(displayed_map(self._full, low, self._foreground),
                                   autoLevels=False, levels=(low, high))  # fmt: skip
        self.overlay_item.setRect(QRectF(0, 0, width, height))
        self.color_bar.setLevels((low, high))
        decision = self.state.decision
        share = None if decision is None else (decision.pixel.value - low) / (high - low)
        self.cut_line.setVisible(share is not None and 0.0 <= share <= 1.0)  # off the scale: none
        if share is not None:  # the bar's own y runs 0..256 over (low, high)
            self.cut_line.setValue(256.0 * min(max(share, 0.0), 1.0))

    def _apply_colormap(self, *_: object) -> None:
        name = self.colormap_combo.currentText()
        self.overlay_item.setLookupTable(heatmap_lut(name))
        self.color_bar.setColorMap(pg.colormap.get(name))

    def _apply_visibility(self, *_: object) -> None:
        self.overlay_item.setVisible(self.heatmap_action.isChecked())
        self.overlay_item.setOpacity(self.opacity_slider.value() / 100.0)
        self.opacity_slider.setToolTip(f"Heatmap opacity: {self.opacity_slider.value()} %")
        self.defect_curve.setVisible(self.defects_check.isChecked())

    def _draw_truth(self, *_: object) -> None:
        show = self._truth is not None and self.gt_check.isChecked()
        self.gt_curve.setData(*outline_path(self._truth if show else None))

    # ---- cursor -------------------------------------------------------------------------
    def value_at(self, x: float, y: float) -> tuple[int, float] | None:
        """Map-grid pixel and anomaly value under image point (x, y); None outside the map."""
        if self._map is None:
            return None
        pixel = grid_pixel(self._image_size, self._map.shape[0], x, y)
        if pixel < 0:
            return None
        return pixel, float(self._map.flat[pixel])

    def show_value_at(self, x: float, y: float) -> None:
        """Update the cursor readout for image point (x, y)."""
        hit = self.value_at(x, y)
        if hit is None:
            self.cursor_label.setText("outside the image" if self._map is not None else "")
            return
        self.cursor_label.setText(f"x {int(x)}, y {int(y)}   score {hit[1]:.4f}")

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        point = self.view_box.mapSceneToView(scene_pos)
        self.show_value_at(point.x(), point.y())

    def _on_mouse_clicked(self, event: object) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._map is None:
            return
        point = self.view_box.mapSceneToView(event.scenePos())
        hit = self.value_at(point.x(), point.y())
        self.state.set_pointed(-1 if hit is None else hit[0])

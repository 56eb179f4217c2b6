"""2D view: the current sample's image with its anomaly heatmap, contours and a cursor readout.

The heatmap is the square S x S map of ``ScoreResult.maps`` stretched over the image rectangle
(no resampling in the view); contours and the pointed-pixel marker live in image pixel units.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from engine.data.readers import read_mask, read_rgb
from engine.errors import InvalidInputError
from musc_gui.state import AppState

COLORMAPS = ("inferno", "viridis", "turbo", "magma")
NORMALISATIONS = ("global", "per image")


def map_levels(maps: np.ndarray, index: int, mode: str) -> tuple[float, float]:
    """Display levels of one map: over all maps ("global", comparable parts) or its own."""
    data = maps if mode == "global" else maps[index]
    low, high = float(np.min(data)), float(np.max(data))
    return low, high if high > low else low + 1e-6


def default_pixel_threshold(maps: np.ndarray) -> float:
    """A starting pixel threshold: mean + 3 standard deviations of all map values."""
    return float(np.mean(maps) + 3.0 * np.std(maps))


def grid_pixel(image_size: tuple[int, int], grid: int, x: float, y: float) -> int:
    """Row-major index on the S x S map grid under image point (x, y); -1 outside the image."""
    height, width = image_size
    if not (0.0 <= x < width and 0.0 <= y < height):
        return -1
    row = min(int(y * grid / height), grid - 1)
    col = min(int(x * grid / width), grid - 1)
    return row * grid + col


def pixel_centre(pixel: int, grid: int, image_size: tuple[int, int]) -> tuple[float, float]:
    """Image (x, y) of the centre of a map-grid pixel."""
    height, width = image_size
    row, col = divmod(int(pixel), grid)
    return (col + 0.5) * width / grid, (row + 0.5) * height / grid


class ImageView(QWidget):
    """Image + heatmap of ``state.current``; click points a pixel (``state.set_pointed``)."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._map: np.ndarray | None = None
        self._image_size: tuple[int, int] = (1, 1)
        self._mask: np.ndarray | None = None
        self._mask_loaded = False
        self._build_controls()
        self._build_plot()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._controls)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.cursor_label)
        state.result_changed.connect(self._on_result_changed)
        state.current_changed.connect(self._on_current_changed)
        state.pointed_changed.connect(self._on_pointed_changed)
        self._on_result_changed(state.result)

    # ---- construction -------------------------------------------------------------------
    def _build_controls(self) -> None:
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(COLORMAPS)
        self.colormap_combo.setToolTip("Colormap of the anomaly heatmap")
        self.norm_combo = QComboBox()
        self.norm_combo.addItems(NORMALISATIONS)
        self.norm_combo.setToolTip(
            "global: same colour scale for every part (comparable); per image: own min..max"
        )
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(50)
        self.opacity_slider.setToolTip("Heatmap opacity")
        self.threshold_check = QCheckBox("Contour at")
        self.threshold_check.setChecked(True)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setDecimals(4)
        self.threshold_spin.setToolTip("Pixel threshold in anomaly-map units (cyan contour)")
        self.gt_check = QCheckBox("Ground truth")
        self.gt_check.setToolTip("Show the ground-truth defect outline (green)")
        self._controls = QHBoxLayout()
        for label, widget in (("Colormap", self.colormap_combo), ("Scale", self.norm_combo),
                              ("Opacity", self.opacity_slider)):  # fmt: skip
            self._controls.addWidget(QLabel(label))
            self._controls.addWidget(widget)
        self._controls.addWidget(self.threshold_check)
        self._controls.addWidget(self.threshold_spin)
        self._controls.addWidget(self.gt_check)
        self._controls.addStretch(1)
        self.colormap_combo.currentTextChanged.connect(self._apply_colormap)
        self.norm_combo.currentTextChanged.connect(self._apply_levels)
        self.opacity_slider.valueChanged.connect(self._apply_opacity)
        self.threshold_spin.valueChanged.connect(self._apply_threshold)
        self.threshold_check.toggled.connect(self._apply_threshold)
        self.gt_check.toggled.connect(self._apply_gt)

    def _build_plot(self) -> None:
        self.graphics = pg.GraphicsLayoutWidget()
        self.view_box = self.graphics.addViewBox(row=0, col=0, lockAspect=True, invertY=True)
        self.view_box.setMenuEnabled(False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item.setZValue(1)
        # Isocurve vertices sit on pixel indices; ImageItem pixel i spans [i, i + 1].
        self.threshold_curve = pg.IsocurveItem(pen=pg.mkPen("c", width=2), axisOrder="row-major")
        self.threshold_curve.setParentItem(self.overlay_item)
        self.threshold_curve.setPos(0.5, 0.5)
        self.gt_curve = pg.IsocurveItem(level=0.5, pen=pg.mkPen("g", width=2),
                                        axisOrder="row-major")  # fmt: skip
        self.gt_curve.setParentItem(self.image_item)
        self.gt_curve.setPos(0.5, 0.5)
        self.gt_curve.setZValue(2)
        self.marker = pg.ScatterPlotItem(size=16, symbol="o", pen=pg.mkPen("w", width=2),
                                         brush=None)  # fmt: skip
        self.marker.setZValue(3)
        for item in (self.image_item, self.overlay_item, self.marker):
            self.view_box.addItem(item)
        self.gt_curve.setZValue(2)
        self.color_bar = pg.ColorBarItem(values=(0, 1), interactive=False, width=14)
        self.graphics.addItem(self.color_bar, row=0, col=1)
        self.cursor_label = QLabel("No sample selected")
        scene = self.graphics.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)
        self._apply_colormap()
        self._apply_opacity()

    # ---- state -> view ----------------------------------------------------------------
    def _on_result_changed(self, result: object) -> None:
        maps = self.state.result.maps if self.state.result is not None else None
        self.threshold_spin.blockSignals(True)
        if maps is not None and maps.size:
            low, high = float(maps.min()), float(maps.max())
            self.threshold_spin.setRange(low, high)
            self.threshold_spin.setSingleStep(max((high - low) / 100.0, 1e-4))
            self.threshold_spin.setValue(default_pixel_threshold(maps))
        self.threshold_spin.blockSignals(False)
        self._on_current_changed(self.state.current)

    def _on_current_changed(self, index: int) -> None:
        result = self.state.result
        self._mask, self._mask_loaded = None, False
        if result is None or not 0 <= index < len(result.samples):
            self._map = None
            self.image_item.clear()
            self.overlay_item.clear()
            self.threshold_curve.setData(None)
            self.gt_curve.setData(None)
            self.marker.setData([])
            self.gt_check.setEnabled(False)
            self.cursor_label.setText("No sample selected")
            return
        sample = result.samples[index]
        self._image_size = tuple(result.image_sizes[index])
        height, width = self._image_size
        rgb = None
        if sample.rgb_path is not None:
            try:
                rgb = read_rgb(sample.rgb_path)
            except InvalidInputError as err:
                self.cursor_label.setText(str(err))
        if rgb is None:
            self.image_item.clear()
        else:
            self.image_item.setImage(rgb, autoLevels=False, levels=(0, 255))
        self._map = result.maps[index]
        self.overlay_item.setImage(self._map, autoLevels=False)
        self.overlay_item.setRect(QRectF(0, 0, width, height))
        self.gt_check.setEnabled(sample.mask_path is not None)
        self._apply_levels()
        self._apply_threshold()
        self._apply_gt()
        self._on_pointed_changed(self.state.pointed)
        self.view_box.autoRange(padding=0.02)
        self.cursor_label.setText(f"{sample.name}: move the cursor over the image")

    def _on_pointed_changed(self, pixel: int) -> None:
        if self._map is None or pixel < 0:
            self.marker.setData([])
            return
        x, y = pixel_centre(pixel, self._map.shape[0], self._image_size)
        self.marker.setData([x], [y])

    # ---- display options --------------------------------------------------------------
    def _apply_colormap(self, *_: object) -> None:
        cmap = pg.colormap.get(self.colormap_combo.currentText())
        self.overlay_item.setColorMap(cmap)
        self.color_bar.setColorMap(cmap)

    def _apply_levels(self, *_: object) -> None:
        result = self.state.result
        if self._map is None or result is None:
            return
        levels = map_levels(result.maps, self.state.current, self.norm_combo.currentText())
        self.overlay_item.setLevels(levels)
        self.color_bar.setLevels(levels)

    def _apply_opacity(self, *_: object) -> None:
        self.overlay_item.setOpacity(self.opacity_slider.value() / 100.0)

    def _apply_threshold(self, *_: object) -> None:
        if self._map is None or not self.threshold_check.isChecked():
            self.threshold_curve.setData(None)
            return
        self.threshold_curve.setData(self._map, level=self.threshold_spin.value())

    def _apply_gt(self, *_: object) -> None:
        if self._map is None or not (self.gt_check.isEnabled() and self.gt_check.isChecked()):
            self.gt_curve.setVisible(False)
            return
        if not self._mask_loaded:  # read lazily: most users never open the ground truth
            self._mask_loaded = True
            sample = self.state.result.samples[self.state.current]
            try:
                self._mask = read_mask(sample.mask_path, self._image_size).astype(np.float32)
            except InvalidInputError as err:
                self.cursor_label.setText(str(err))
                self._mask = None
        if self._mask is None:
            self.gt_curve.setVisible(False)
            return
        self.gt_curve.setData(self._mask, level=0.5)
        self.gt_curve.setVisible(True)

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

"""Parameter panel built from ``MuscConfig.field_info()`` (titles, ranges) and the stage spec.

The group and marker of each field come from :func:`engine.session.stages.field_cost`. Live
fields (interval X%, RsCon window, 3D blur, fusion) are read out from cached distance tables in
milliseconds, so they emit :attr:`ParameterPanel.cheap_changed` on every slider tick. Every
other field is applied together with the Apply button (:attr:`ParameterPanel.apply_requested`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine import backbones
from engine.config import (
    BN_STATS,
    DEVICES,
    FUSIONS,
    IPG_VARIANTS,
    MODALITIES,
    PRECISIONS,
    MuscConfig,
)
from engine.errors import InvalidInputError
from engine.session.results import ScoreResult
from engine.session.stages import Cost, field_cost
from musc_gui.state import AppState

CHOICES: dict[str, tuple[str, ...]] = {
    "modality": MODALITIES,
    "fusion": FUSIONS,
    "ipg_variant": IPG_VARIANTS,
    "bn_stats": BN_STATS,
    "device": DEVICES,
    "precision": PRECISIONS,
}
COSTS = {  # presentation of each cost level: (group title, marker, tooltip)
    Cost.LIVE: ("Live re-score", "", "re-scores instantly from cached distances"),
    Cost.RESCORE: ("Re-score (Apply)", "◐", "re-runs mutual scoring on cached features"),
    Cost.REGROUP: ("3D grouping (Apply)", "◑", "re-groups 3D points (and re-extracts 3D features)"),
    Cost.REEXTRACT: ("Features (Apply)", "●", "re-extracts features (the slowest change)"),
    Cost.NONE: ("Run settings (Apply)", "○", "changes how stages run; recomputes nothing"),
}
SLIDER_STEPS = 1000
AUTO = "auto"


def _backbone_choices(name: str) -> tuple[str, ...]:
    return (AUTO, *backbones.list_backbones("2d" if name == "backbone" else "3d"))


class FieldEditor(QWidget):
    """One config field: a widget, ``value()`` / ``set_value()``, and ``changed`` on edits."""

    changed = Signal()

    def __init__(self, name: str, info: dict[str, Any], default: Any) -> None:
        super().__init__()
        self.name, self.info, self.default = name, info, default
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        value_range = info.get("range")
        self.slider: QSlider | None = None
        if name in CHOICES or name in ("backbone", "backbone_3d", "cae"):
            self.widget = QComboBox()
            options = CHOICES.get(name) or (
                (AUTO, "on", "off") if name == "cae" else _backbone_choices(name)
            )
            self.widget.addItems(list(options))
            self.widget.currentIndexChanged.connect(self.changed)
        elif isinstance(default, bool):
            self.widget = QCheckBox()
            self.widget.toggled.connect(self.changed)
        elif isinstance(default, float):
            self.widget = QDoubleSpinBox()
            low, high = value_range or (0.0, 1e6)
            self.widget.setRange(low, high)
            self.widget.setDecimals(3 if high <= 1 else 2)
            self.widget.setSingleStep((high - low) / 100)
            self.widget.valueChanged.connect(self.changed)
            if value_range is not None:  # a slider for live dragging, kept in sync with the spin
                self.slider = QSlider(Qt.Orientation.Horizontal)
                self.slider.setRange(0, SLIDER_STEPS)
                self.slider.valueChanged.connect(self._slider_moved)
                self.widget.valueChanged.connect(self._spin_moved)
                layout.addWidget(self.slider, 1)
        elif isinstance(default, int) or (default is None and value_range is not None):
            self.widget = QSpinBox()
            low, high = value_range or (0, 2**31 - 1)
            if default is None:  # e.g. image_size: the value below the range means "auto"
                low -= 1
                self.widget.setSpecialValueText(AUTO)
            self.widget.setRange(int(low), int(high))
            self.widget.valueChanged.connect(self.changed)
        else:  # paths, layer lists, r lists: text
            self.widget = QLineEdit()
            self.widget.setPlaceholderText(AUTO)
            self.widget.editingFinished.connect(self.changed)
            if name.startswith("weights"):
                browse = QPushButton("…")
                browse.setToolTip("Choose a weights file")
                browse.clicked.connect(self.browse)
                layout.addWidget(self.widget, 1)
                layout.addWidget(browse)
        if self.widget.parent() is None:
            layout.addWidget(self.widget, 1 if self.slider is None else 0)
        self.set_value(default)

    def _slider_moved(self, position: int) -> None:
        low, high = self.info["range"]
        self.widget.setValue(low + (high - low) * position / SLIDER_STEPS)

    def _spin_moved(self, value: float) -> None:
        low, high = self.info["range"]
        self.slider.blockSignals(True)
        self.slider.setValue(round((value - low) / (high - low) * SLIDER_STEPS))
        self.slider.blockSignals(False)

    def browse(self) -> None:
        """Pick a weights file with a dialog."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Weights file", "", "Weights (*.pth *.pt *.bin *.safetensors);;All files (*)"
        )
        if path:
            self.set_value(path)
            self.changed.emit()

    def value(self) -> Any:
        """The field value as ``MuscConfig`` expects it."""
        w = self.widget
        if isinstance(w, QComboBox):
            text = w.currentText()
            if self.name == "cae":
                return {AUTO: None, "on": True, "off": False}[text]
            return None if text == AUTO and self.name.startswith("backbone") else text
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QDoubleSpinBox):
            return float(w.value())
        if isinstance(w, QSpinBox):
            return None if w.specialValueText() and w.value() == w.minimum() else int(w.value())
        text = w.text().strip()
        if self.name.startswith("weights"):
            return text or None
        if not text or text == AUTO:
            return None if self.default is None else self.default
        try:
            return tuple(int(part) for part in text.replace(",", " ").split())
        except ValueError as error:
            raise InvalidInputError(
                f"{self.info['title']}: expected whole numbers separated by commas, got {text!r}"
            ) from error

    def set_value(self, value: Any) -> None:
        """Show ``value`` without emitting ``changed``."""
        w = self.widget
        w.blockSignals(True)
        if isinstance(w, QComboBox):
            if self.name == "cae":
                text = {None: AUTO, True: "on", False: "off"}[value]
            else:
                text = AUTO if value is None else str(value)
            if w.findText(text) < 0:
                w.addItem(text)
            w.setCurrentText(text)
        elif isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QSpinBox):
            w.setValue(w.minimum() if value is None else int(value))
        elif isinstance(w, QDoubleSpinBox):
            w.setValue(float(value))
            if self.slider is not None:
                self._spin_moved(float(value))
        elif isinstance(value, tuple):
            w.setText(", ".join(str(v) for v in value))
        else:
            w.setText("" if value is None else str(value))
        w.blockSignals(False)


class ParameterPanel(QWidget):
    """Edits a :class:`MuscConfig`; bound to an :class:`AppState`.

    Signals:
        cheap_changed(dict): a cheap field moved, e.g. ``{"x_percent": 20.0}``.
        apply_requested(object): the user pressed Apply; carries the full new ``MuscConfig``.
    """

    cheap_changed = Signal(dict)
    apply_requested = Signal(object)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        info = MuscConfig.field_info()
        self.editors: dict[str, FieldEditor] = {}
        groups = {cost: QFormLayout() for cost in COSTS}
        for f in fields(MuscConfig):
            meta = info[f.name]
            editor = FieldEditor(f.name, meta, getattr(state.config, f.name))
            cost = field_cost(f.name)
            _, marker, tip = COSTS[cost]
            label = QLabel(f"{marker} {meta['title']}".strip())
            for widget in (label, editor):
                widget.setToolTip(f"{meta['title']} ({f.name}): {tip}")
            groups[cost].addRow(label, editor)
            self.editors[f.name] = editor
            if cost is Cost.LIVE:
                editor.changed.connect(lambda name=f.name: self._cheap_edited(name))
            else:
                editor.changed.connect(self._expensive_edited)

        self.backbone_label = QLabel("Backbone: not run yet")
        self.backbone_label.setWordWrap(True)
        self.weights_warning = QLabel()
        self.weights_warning.setWordWrap(True)
        self.weights_warning.setStyleSheet("color: #b35c00")
        self.weights_button = QPushButton("Weights file…")
        self.weights_button.setToolTip("Use the paper's DINO ViT-B/8 from a local weights file")
        self.weights_button.clicked.connect(self._choose_paper_weights)
        self.fallback_button = QPushButton("Use offline backbone")
        self.fallback_button.clicked.connect(self._use_offline)
        for widget in (self.weights_warning, self.weights_button, self.fallback_button):
            widget.hide()
        self.apply_button = QPushButton("Apply")
        self.apply_button.setEnabled(False)
        self.apply_button.setToolTip("Recompute the stages the changed parameters invalidate")
        self.apply_button.clicked.connect(self.apply)
        self.error_label = QLabel()
        self.error_label.setStyleSheet("color: #c02020")
        self.error_label.setWordWrap(True)

        inner = QWidget()
        column = QVBoxLayout(inner)
        for cost, form in groups.items():
            box = QGroupBox(COSTS[cost][0])
            box.setLayout(form)
            column.addWidget(box)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        buttons = QHBoxLayout()
        buttons.addWidget(self.weights_button)
        buttons.addWidget(self.fallback_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.backbone_label)
        layout.addWidget(self.weights_warning)
        layout.addLayout(buttons)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.apply_button)

        state.config_changed.connect(self.set_config)
        state.result_changed.connect(self.show_backbones)

    # -- state -> panel -----------------------------------------------------------------------

    def set_config(self, config: MuscConfig) -> None:
        """Show ``config`` (no signals); clears pending edits."""
        for name, editor in self.editors.items():
            editor.set_value(getattr(config, name))
        self.apply_button.setEnabled(False)
        self.error_label.clear()

    def show_backbones(self, result: ScoreResult | None) -> None:
        """Say which networks and weights produced ``result`` and flag the offline fallback."""
        if result is None:
            return
        lines = []
        if result.backbone is not None:
            b = result.backbone
            lines.append(f"2D: {b.name} ({b.architecture}), weights {b.weights_source}")
        if result.backbone_3d is not None:
            b3 = result.backbone_3d
            lines.append(f"3D: {b3.name} ({b3.architecture}), weights {b3.weights_source}")
        self.backbone_label.setText("\n".join(lines) or "Backbone: none")
        paper = backbones.default_backbone("2d")
        fallback = result.backbone is not None and result.backbone.name != paper
        auto = self.state.config.backbone in (None, backbones.default_backbone("2d", "offline"))
        self.set_weights_warning(
            f"The paper's {paper} weights are not in use; scores come from the "
            f"offline {result.backbone.name}. Choose a local weights file to use the paper's "
            "backbone."
            if fallback and auto
            else ""
        )

    def set_weights_warning(self, text: str) -> None:
        """Show (or hide, with "") the missing-weights notice and its buttons."""
        self.weights_warning.setText(text)
        self.weights_warning.setVisible(bool(text))
        self.weights_button.setVisible(bool(text))
        self.fallback_button.setVisible(False)

    # -- panel -> signals ---------------------------------------------------------------------

    def _cheap_edited(self, name: str) -> None:
        try:
            value = self.editors[name].value()
        except InvalidInputError:
            return
        self.cheap_changed.emit({name: value})

    def _expensive_edited(self) -> None:
        self.apply_button.setEnabled(True)

    def config(self) -> MuscConfig:
        """The configuration the widgets show (validated by ``MuscConfig``)."""
        values = {name: editor.value() for name, editor in self.editors.items()}
        return MuscConfig(**values)

    def apply(self) -> None:
        """Emit :attr:`apply_requested` with the edited config; show a validation error."""
        try:
            config = self.config()
        except InvalidInputError as error:
            self.error_label.setText(str(error))
            return
        self.error_label.clear()
        self.apply_button.setEnabled(False)
        self.apply_requested.emit(config)

    def _choose_paper_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "DINO ViT-B/8 weights",
            "",
            "Weights (*.pth *.pt *.bin *.safetensors);;All files (*)",
        )
        if path:
            self.editors["backbone"].set_value(backbones.default_backbone("2d"))
            self.editors["weights"].set_value(path)
            self.fallback_button.show()
            self.apply_button.setEnabled(True)

    def _use_offline(self) -> None:
        self.editors["backbone"].set_value(backbones.default_backbone("2d", "offline"))
        self.editors["weights"].set_value(None)
        self.fallback_button.hide()
        self.apply_button.setEnabled(True)

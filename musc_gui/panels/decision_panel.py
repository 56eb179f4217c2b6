"""The Decision dock: the image and pixel cuts, how each was chosen, and what they decide.

Bound to :class:`AppState` both ways (napari's widget-on-a-model pattern): it shows
``state.decision`` (values, each cut's "how" line, warnings) and the state's result counted
against it; what the user types becomes ``state.set_policy(...)``, and the controller turns the
policy into the next decision. A typed cut is a number in the policy, so it stays through
re-scores, Apply and reopening the folder; "auto" returns a cut to the automatic rule.
"""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.decision import Decision, DecisionPolicy, outcome
from engine.session.results import ScoreResult
from musc_gui.state import AppState

DECIMALS = 5
SHOWN_NAMES = 4  # names listed under the counts; all of them are in the tooltip
HOW_STYLE = "color: #555"
NOTE_STYLE = "color: #8a4b00; background: #fff1d6; border: 1px solid #e0a040; padding: 4px"
AREA_AUTO = "auto"


def _cut_spin() -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(DECIMALS)
    spin.setRange(-1e4, 1e4)  # anomaly scores and maps are O(1); a wider range widens the box
    spin.setKeyboardTracking(False)  # a typed number counts once Enter or Tab ends it
    return spin


def _wrapped(style: str = "") -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setStyleSheet(style)
    return label


def _heading(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-weight: bold; margin-top: 6px")
    return label


def _names(title: str, names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:SHOWN_NAMES]) + (" …" if len(names) > SHOWN_NAMES else "")
    return f"{title} ({len(names)}): {shown}" if names else f"{title}: none"


class DecisionPanel(QWidget):
    """Edits the state's :class:`DecisionPolicy` and shows its :class:`Decision`."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.image_spin, self.pixel_spin = _cut_spin(), _cut_spin()
        self.image_spin.setToolTip("Parts scoring at or above this fail")
        self.pixel_spin.setToolTip("Map values at or above this are defect pixels")
        self.image_auto, self.pixel_auto = QCheckBox("auto"), QCheckBox("auto")
        for box in (self.image_auto, self.pixel_auto):
            box.setToolTip("Choose the cut from the normal parts again")
        self.image_how, self.pixel_how = _wrapped(HOW_STYLE), _wrapped(HOW_STYLE)
        self.risk = _wrapped()
        self.area_px = QSpinBox()
        self.area_px.setRange(-1, 10_000_000)
        self.area_px.setSpecialValueText(AREA_AUTO)
        self.area_px.setSuffix(" px")
        self.area_px.setKeyboardTracking(False)
        self.area_px.setToolTip("Smaller regions are specks, not defects; auto = 0.01 % of "
                                "each image")  # fmt: skip
        self.area_mm2 = QDoubleSpinBox()
        self.area_mm2.setRange(0.0, 1e6)
        self.area_mm2.setDecimals(3)
        self.area_mm2.setSpecialValueText("off")
        self.area_mm2.setSuffix(" mm²")
        self.area_mm2.setKeyboardTracking(False)
        self.area_mm2.setToolTip("With XYZ: regions with a smaller surface are specks too")
        self.area_mm2_label = QLabel("Min. area (3D)")
        self.counts = _wrapped("font-weight: bold")
        self.mistakes = _wrapped()
        self.notes = _wrapped(NOTE_STYLE)
        self.known_good = _wrapped()
        self.add_known = QPushButton("Add known-good folder…")
        self.add_known.setToolTip("Score a folder of good parts with the batch; the cuts then "
                                  "come from them, with a false-reject rate")  # fmt: skip
        self.clear_known = QPushButton("Clear known-good")
        self.clear_known.setToolTip("Forget the parts marked known-good; cuts become automatic")

        areas = QFormLayout()
        areas.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        areas.addRow("Min. defect area", self.area_px)
        areas.addRow(self.area_mm2_label, self.area_mm2)
        inner = QWidget()
        layout = QVBoxLayout(inner)
        # what the user acts on first: warnings and verdicts, then the cuts behind them
        for widget in (self.notes, self.counts, self.mistakes, self.risk):
            layout.addWidget(widget)
        cuts = (("Image cut: a part fails at or above", self.image_spin, self.image_auto,
                 self.image_how),
                ("Pixel cut: defect pixels at or above", self.pixel_spin, self.pixel_auto,
                 self.pixel_how))  # fmt: skip
        for title, spin, auto, how in cuts:
            layout.addWidget(_heading(title))
            layout.addWidget(self._row(spin, auto))
            layout.addWidget(how)
        layout.addLayout(areas)
        layout.addWidget(_heading("Known-good parts"))
        layout.addWidget(self.known_good)
        layout.addWidget(self.add_known, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.clear_known, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        self.image_spin.valueChanged.connect(lambda v: self._edit(image=float(v)))
        self.pixel_spin.valueChanged.connect(lambda v: self._edit(pixel=float(v)))
        self.image_auto.toggled.connect(lambda on: self._edit(
            image="auto" if on else float(self.image_spin.value())))  # fmt: skip
        self.pixel_auto.toggled.connect(lambda on: self._edit(
            pixel="auto" if on else float(self.pixel_spin.value())))  # fmt: skip
        self.area_px.valueChanged.connect(lambda v: self._edit(min_area_px=None if v < 0 else v))
        self.area_mm2.valueChanged.connect(lambda v: self._edit(min_area_mm2=v or None))
        self.clear_known.clicked.connect(lambda: self._edit(reference=()))
        state.policy_changed.connect(self.show_policy)
        state.decision_changed.connect(self.show_decision)
        state.result_changed.connect(self._result_changed)
        state.dataset_changed.connect(lambda _d: self._show_xyz_rows())
        self.show_policy(state.policy)
        self._result_changed(state.result)

    @staticmethod
    def _row(spin: QDoubleSpinBox, auto: QCheckBox) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(spin, 1)
        layout.addWidget(auto)
        return row

    def _edit(self, **changes: object) -> None:
        self.state.set_policy(self.state.policy.replace(**changes))

    # -- state -> panel -----------------------------------------------------------------------

    def show_policy(self, policy: DecisionPolicy) -> None:
        """Show the user's choices: auto or typed cuts, minimum areas, known-good parts."""
        for box, value in ((self.image_auto, policy.image), (self.pixel_auto, policy.pixel)):
            box.blockSignals(True)
            box.setChecked(value == "auto")
            box.blockSignals(False)
        for spin, value in ((self.image_spin, policy.image), (self.pixel_spin, policy.pixel)):
            if not isinstance(value, str):
                self._set_quietly(spin, float(value))
        self._set_quietly(self.area_px, -1 if policy.min_area_px is None else policy.min_area_px)
        self._set_quietly(self.area_mm2, policy.min_area_mm2 or 0.0)
        count = len(policy.reference)
        self.known_good.setText(
            f"{count} part{'s' if count != 1 else ''} marked: the cuts come from them."
            if count else "None marked. Mark good parts in the ranked list (G or the context "
            "menu) to base the cuts on them."
        )  # fmt: skip
        self.known_good.setToolTip("\n".join(policy.reference))
        self.clear_known.setEnabled(bool(count))
        self._show_xyz_rows()

    def show_decision(self, decision: Decision | None) -> None:
        """Show the cuts in force, how they were chosen, the verdicts and any warning."""
        for spin in (self.image_spin, self.pixel_spin):
            spin.setEnabled(decision is not None)
        if decision is None:
            for label in (self.image_how, self.pixel_how, self.risk, self.counts, self.mistakes):
                label.clear()
            for label in (self.notes, self.risk, self.counts, self.mistakes, self.image_how,
                          self.pixel_how):  # fmt: skip
                label.hide()
            return
        self._set_quietly(self.image_spin, decision.image.value)
        self._set_quietly(self.pixel_spin, decision.pixel.value)
        for label, cut in ((self.image_how, decision.image), (self.pixel_how, decision.pixel)):
            label.setText(cut.how)
            label.setVisible(bool(cut.how))
        rate = decision.image.expected_false_reject
        self.risk.setText(f"Expected false rejects: {100 * rate:.1f} % of good parts"
                          if rate is not None else "")  # fmt: skip
        self.risk.setVisible(rate is not None)
        self.notes.setText("⚠ " + "\n".join(decision.notes))
        self.notes.setVisible(bool(decision.notes))
        self._show_counts(self.state.result, decision)

    def _show_counts(self, result: ScoreResult | None, decision: Decision) -> None:
        if result is None or len(result.samples) == 0:
            self.counts.clear()
            self.mistakes.clear()
            return
        self.counts.show()
        self.mistakes.show()
        counted = outcome(result, decision)
        share = 100.0 * counted.failed / max(1, counted.failed + counted.passed)
        self.counts.setText(f"{counted.failed} fail ({share:.0f} %) · {counted.passed} pass")
        if counted.false_rejects is None or counted.escapes is None:
            self.mistakes.setText("No ground truth: false rejects and escapes are unknown.")
            self.mistakes.setToolTip("")
            return
        rejects, escapes = (
            _names("False rejects", counted.false_rejects),
            _names("Escapes", counted.escapes),
        )
        self.mistakes.setText(f"{html.escape(rejects)}<br>{html.escape(escapes)}")
        self.mistakes.setToolTip(
            "False rejects (good parts that fail):\n  " + "\n  ".join(counted.false_rejects)
            + "\nEscapes (defective parts that pass):\n  " + "\n  ".join(counted.escapes)
        )  # fmt: skip

    def _result_changed(self, result: ScoreResult | None) -> None:
        if result is not None and len(result.samples):
            for spin, values in ((self.image_spin, result.image_scores),
                                 (self.pixel_spin, result.maps)):  # fmt: skip
                low, high = float(np.min(values)), float(np.max(values))
                spin.setSingleStep(max((high - low) / 100.0, 10.0**-DECIMALS))
        self.show_decision(self.state.decision)

    def _show_xyz_rows(self) -> None:
        dataset = self.state.dataset
        has_xyz = dataset is not None and dataset.has_xyz
        self.area_mm2.setVisible(has_xyz)
        self.area_mm2_label.setVisible(has_xyz)

    @staticmethod
    def _set_quietly(spin: QSpinBox | QDoubleSpinBox, value: float) -> None:
        spin.blockSignals(True)
        spin.setValue(value)
        spin.blockSignals(False)

    # -- for tests and the report -------------------------------------------------------------

    def notes_text(self) -> str:
        """The warning line as shown ("" when hidden)."""
        return self.notes.text() if not self.notes.isHidden() else ""

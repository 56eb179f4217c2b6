"""The application state shared by all views: one QObject with past-tense signals.

Views hold no compute: they read this state, render it, and write user choices back into it.
Results reach widgets as numpy arrays (``engine.session.results.ScoreResult`` holds only numpy).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from engine.config import MuscConfig
from engine.data.samples import DatasetIndex
from engine.decision import Decision, DecisionPolicy
from engine.session.results import ScoreResult


class AppState(QObject):
    """What is open, what was computed, what is selected.

    Signals:
        dataset_changed(object): a new DatasetIndex (or None) was opened.
        result_changed(object): a new ScoreResult (or None) is available.
        current_changed(int): the selected sample index (into result.samples), -1 for none.
        threshold_changed(float): the pass/fail threshold on image scores moved.
        decision_changed(object): a new ``engine.decision.Decision`` (or None): the image and
            pixel cuts every view, the export and the report use.
        policy_changed(object): the user's ``DecisionPolicy`` changed (typed cuts, minimum
            area, known-good parts); the controller turns it into a decision.
        config_changed(object): the MuscConfig was edited.
        pointed_changed(int): the pointed pixel of the current sample moved (row-major index on
            the square S x S map grid, -1 for none); links the 2D and 3D views.
    """

    dataset_changed = Signal(object)
    result_changed = Signal(object)
    current_changed = Signal(int)
    threshold_changed = Signal(float)
    decision_changed = Signal(object)
    policy_changed = Signal(object)
    config_changed = Signal(object)
    pointed_changed = Signal(int)

    def __init__(self, config: MuscConfig | None = None) -> None:
        super().__init__()
        self.dataset: DatasetIndex | None = None
        self.result: ScoreResult | None = None
        self.current: int = -1
        self.threshold: float = 0.5
        self.config: MuscConfig = config or MuscConfig()
        self.pointed: int = -1
        self.decision: Decision | None = None
        self.policy: DecisionPolicy = DecisionPolicy()

    def set_dataset(self, dataset: DatasetIndex | None) -> None:
        """Open a dataset; clears the result and the selection."""
        self.dataset = dataset
        self.result = None
        self.current = -1
        self.dataset_changed.emit(dataset)
        self.result_changed.emit(None)
        self.current_changed.emit(-1)

    def set_result(self, result: ScoreResult | None) -> None:
        """Publish a (re-)scored result; keeps the selection when it is still valid."""
        self.result = result
        if result is None or self.current >= len(result.samples):
            self.current = -1
        self.result_changed.emit(result)

    def set_current(self, index: int) -> None:
        """Select a sample (index into ``result.samples``)."""
        if index != self.current:
            self.current = index
            self.current_changed.emit(index)
            self.set_pointed(-1)

    def set_threshold(self, value: float) -> None:
        """Move the pass/fail threshold."""
        if value != self.threshold:
            self.threshold = float(value)
            self.threshold_changed.emit(self.threshold)

    def set_config(self, config: MuscConfig) -> None:
        """Replace the configuration (the main window decides what to recompute)."""
        if config != self.config:
            self.config = config
            self.config_changed.emit(config)

    def set_pointed(self, pixel: int) -> None:
        """Point at a pixel of the current sample (index on the S x S map grid, -1 for none)."""
        pixel = int(pixel)
        if pixel != self.pointed:
            self.pointed = pixel
            self.pointed_changed.emit(pixel)

    def set_decision(self, decision: Decision | None) -> None:
        """Publish the thresholds in force; also moves ``threshold`` to the image cut."""
        self.decision = decision
        self.decision_changed.emit(decision)
        if decision is not None:
            self.set_threshold(decision.image.value)

    def set_policy(self, policy: DecisionPolicy) -> None:
        """Record what the user asked for (the controller recomputes the decision)."""
        if policy != self.policy:
            self.policy = policy
            self.policy_changed.emit(policy)

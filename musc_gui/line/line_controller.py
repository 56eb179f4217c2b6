"""What the Line dock's actions do, kept out of its widgets (as ``SessionController`` is).

:class:`LineController` starts and stops the line (:class:`LineRunner`), makes a recipe from the
open batch, forwards pin / unpin / re-score requests to the worker and publishes what comes
back into :class:`AppState`, so the ranked list, the 2D/3D views and the decision panel show the
stream as they show a batch:

* the watched folder becomes the open dataset (:class:`LineDataset`; the batch session is
  closed, so F5 and the parameter panel cannot publish a batch result over the line; opening
  another folder stops the line);
* each new part publishes the recent parts newest first (at most ``StreamScorer.recent``) and
  the recipe's cuts as the decision. The selection follows the newest part while the newest
  (or nothing) is selected; otherwise it stays on the same part by name;
* the controller of the batch re-decides on every new result under the user's policy; the
  recipe's cuts are put back right after (the line's cut is the recipe's, not the batch's).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from engine.data.samples import DatasetIndex
from engine.decision import Decision
from engine.progress import Progress
from engine.session.session import InspectionSession
from engine.stream.recipe_create import DEFAULT_BANK
from musc_gui.controller import SessionController
from musc_gui.line.line_job import (
    LineChanged,
    LineNote,
    LineSetup,
    LineStarted,
    LineView,
    PartScored,
    PartSkipped,
    recipe_steps,
    rescore_changes,
)
from musc_gui.line.line_model import AlarmRule, LineStats, PartRecord
from musc_gui.line.line_runner import LineRunner, wait_for
from musc_gui.state import AppState
from musc_gui.worker import EngineRunner

logger = logging.getLogger("musc_gui.line")
RECIPE_SUFFIX = ".musc-recipe.h5"


@dataclass
class LineDataset(DatasetIndex):
    """The watched folder as the open dataset; its samples are the parts shown now."""

    modality: str = "2d"

    @property
    def has_xyz(self) -> bool:
        """Whether the recipe scores 3D (the 3D view is offered from the start)."""
        return "3d" in self.modality


class LineController(QObject):
    """Runs line mode and publishes each verdict into the shared state.

    Signals:
        running_changed(bool): the line started (True) or its worker ended (False).
        part_added(object): a :class:`PartRecord` was counted.
        counters_changed(): :attr:`stats` changed (a part, a skipped part, a reset).
        alarm_changed(bool, str): the fail-rate alarm was raised (True) or cleared, and why.
        bank_changed(tuple): the bank as ``BankEntry`` tuples.
        cut_changed(float): the image cut in force.
        message(str, int): a status line and how long to show it (ms).
        failed(str): an error the user must see.
        recipe_progressed(float, str): making a recipe: fraction of the stage and its name.
        recipe_made(str): a recipe was written to this path.

    Attributes:
        runner: The worker (tests replace its ``scorer_factory``).
        recipe_runner: Makes recipes on its own worker.
        stats: Counters and alarm of the current run.
        settle_seconds: How long a part's files must stay unchanged before it is scored.
        bank_size: Most parts in a new recipe's bank.
    """

    running_changed = Signal(bool)
    part_added = Signal(object)
    counters_changed = Signal()
    alarm_changed = Signal(bool, str)
    bank_changed = Signal(tuple)
    cut_changed = Signal(float)
    message = Signal(str, int)
    failed = Signal(str)
    recipe_progressed = Signal(float, str)
    recipe_made = Signal(str)

    def __init__(self, state: AppState, session: SessionController, parent: QObject | None = None):
        super().__init__(parent)
        self.state, self.session = state, session
        self.runner = LineRunner(self)
        self.recipe_runner = EngineRunner(self)
        self.stats = LineStats()
        self.settle_seconds = 0.5
        self.bank_size = DEFAULT_BANK
        self.bank: tuple = ()
        self.dataset: LineDataset | None = None
        self._result = None  # the last result this controller published
        self._decision: Decision | None = None
        self.runner.started.connect(self._started)
        self.runner.scored.connect(self._scored)
        self.runner.skipped.connect(self._skipped)
        self.runner.changed.connect(self._changed)
        self.runner.noted.connect(self._noted)
        self.runner.errored.connect(self._errored)
        self.runner.finished.connect(self._finished)
        self.recipe_runner.yielded.connect(self._recipe_progressed)
        self.recipe_runner.returned.connect(self._recipe_returned)
        self.recipe_runner.errored.connect(
            lambda text: self.failed.emit(f"Could not make the recipe: {text}")
        )
        self.recipe_runner.finished.connect(lambda: self.recipe_progressed.emit(1.0, ""))
        state.decision_changed.connect(self._decision_changed)
        state.dataset_changed.connect(self._dataset_changed)

    # -- what the dock asks ---------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether the line's worker runs."""
        return self.runner.running

    def start(self, recipe: str | Path, folder: str | Path, policy: str = "pinned",
              include_existing: bool = False) -> bool:  # fmt: skip
        """Watch ``folder`` and score each new part against ``recipe``; False if refused."""
        recipe, folder = Path(recipe).expanduser(), Path(folder).expanduser()
        problem = (
            "The line is already running; stop it first." if self.active
            else f"{recipe}: no such recipe file; choose one (Browse…) or make one from the "
            "open folder." if not recipe.is_file()
            else f"{folder}: no such folder; choose the folder the line writes its parts into."
            if not folder.is_dir() else ""
        )  # fmt: skip
        if problem:
            self.failed.emit(problem)
            return False
        self.stats.reset()
        self._result, self._decision, self.dataset = None, None, None
        self.counters_changed.emit()
        self.alarm_changed.emit(False, "")
        self.runner.start(LineSetup(recipe, folder, policy, self.settle_seconds, include_existing))
        self.running_changed.emit(True)
        self.message.emit(f"Line: loading {recipe.name}…", 5000)
        return True

    def stop(self) -> None:
        """Stop the line after the part in hand."""
        if self.active:
            self.runner.stop()
            self.message.emit("Line: stopping…", 3000)

    def shutdown(self) -> None:
        """Stop every worker and wait for them (closing the window)."""
        self.runner.stop()
        self.recipe_runner.cancel()
        self.runner.wait()
        wait_for(self.recipe_runner, 30000)

    def set_alarm(self, window: int, percent: float) -> None:
        """Alarm when more than ``percent`` % of the last ``window`` parts fail."""
        self.stats.rule = AlarmRule(int(window), float(percent))
        self._check_alarm()

    def selected_name(self) -> str | None:
        """The name of the part selected in the ranked list (None without one)."""
        result, current = self.state.result, self.state.current
        if result is None or not 0 <= current < len(result.samples):
            return None
        return result.names[current]

    def pin(self, name: str | None = None) -> bool:
        """Pin ``name`` (default: the selected part) into the bank; applied between parts."""
        name = name or self.selected_name()
        if not self.active or not name:
            return False
        self.runner.pin(name)
        return True

    def unpin(self, name: str | None = None) -> bool:
        """Unpin ``name`` (default: the selected part) from the bank; applied between parts."""
        name = name or self.selected_name()
        if not self.active or not name:
            return False
        self.runner.unpin(name)
        return True

    def set_cheap(self, changes: dict[str, Any]) -> bool:
        """Re-score the recent parts with new X %, k or blur on the worker.

        Returns:
            Whether line mode took the change (False: not running, the batch controller's).
        """
        if not self.active:
            return False
        kept, refused = rescore_changes(changes)
        if kept:
            self.state.config = self.state.config.replace(**kept)  # the panel shows it already
            self.runner.rescore(kept)
        if refused:
            self.message.emit(f"Line mode: {', '.join(refused)} is the recipe's; make a new "
                              "recipe to change it", 8000)  # fmt: skip
        return True

    def default_recipe_path(self) -> Path | None:
        """``<folder>/<category>.musc-recipe.h5`` for the open batch, None without one."""
        session = self.session.session
        if session is None or isinstance(session.dataset, LineDataset):
            return None
        return session.dataset.root / f"{session.dataset.category}{RECIPE_SUFFIX}"

    def make_recipe(self, path: str | Path) -> bool:
        """Make a recipe from the open, scored batch on a worker and save it to ``path``."""
        session = self.session.session
        problem = (
            "Open a folder of good parts and let it score first; the recipe is made from it."
            if session is None or self.state.result is None
            else "Wait until the open folder has scored." if not self.session.idle
            else "A recipe is already being made." if self.recipe_runner.running else ""
        )  # fmt: skip
        if problem:
            self.failed.emit(problem)
            return False
        path, size = Path(path), self.bank_size
        # a copy shares the cached stages (nothing is extracted again) but not the session's
        # state, so the batch controller may re-score or re-run meanwhile without a race
        copy = InspectionSession.from_snapshot(session.dataset, session.snapshot())
        self.recipe_runner.start(copy, lambda: recipe_steps(copy, path, size))
        self.recipe_progressed.emit(0.0, "Making the recipe…")
        return True

    # -- worker -> state --------------------------------------------------------------------------

    def _started(self, event: LineStarted) -> None:
        view, setup = event.view, event.setup
        folder = setup.folder
        self.dataset = LineDataset(root=folder, layout="line", category=folder.name,
                                   modality=view.modality)  # fmt: skip
        self.session.open_dataset(self.dataset, run=False)  # the batch stops publishing
        self.state.set_config(view.config)
        self._publish(view, follow=True)
        self.message.emit(f"Line: watching {folder} with a bank of {len(view.bank)} "
                          f"({setup.policy})", 10000)  # fmt: skip
        logger.info("line started: %s, recipe %s, bank %d (%s)", folder, setup.recipe,
                    len(view.bank), setup.policy)  # fmt: skip

    def _scored(self, event: PartScored) -> None:
        latency = max(0.0, time.time() - event.arrived)  # file complete -> verdict on screen
        record = PartRecord(event.name, event.score, event.verdict, event.arrived, latency,
                            event.entered_bank)  # fmt: skip
        self.stats.add(record)
        self._publish(event.view, follow=self.state.current <= 0)
        entered = " (entered the bank)" if event.entered_bank else ""
        logger.info("%s: %s %.4f in %.0f ms (scoring %.0f ms)%s", event.name, event.verdict,
                    event.score, latency * 1000, event.seconds * 1000, entered)  # fmt: skip
        self.part_added.emit(record)
        self.counters_changed.emit()
        self._check_alarm()

    def _skipped(self, event: PartSkipped) -> None:
        self.stats.skip()
        logger.warning("skipped %s: %s", event.name, event.reason)
        self.message.emit(f"Line: skipped {event.name}: {event.reason}", 15000)
        self.counters_changed.emit()

    def _changed(self, event: LineChanged) -> None:
        self.state.set_config(event.view.config)
        self._publish(event.view, follow=False)
        logger.info("line: %s", event.message)
        self.message.emit(f"Line: {event.message}", 8000)

    def _errored(self, text: str) -> None:
        what = "stopped" if self.dataset is not None else "could not start"
        logger.error("line %s: %s", what, text)
        self.failed.emit(f"Line mode {what}: {text}")

    def _noted(self, event: LineNote) -> None:
        logger.log(event.level, "line: %s", event.message)
        self.message.emit(f"Line: {event.message}", 15000)

    def _finished(self) -> None:
        self.running_changed.emit(False)
        counters = self.stats.counters()
        text = f"Line stopped: {counters.parts} parts, {counters.fails} failed"
        logger.info(text)
        self.message.emit(text, 10000)

    def _publish(self, view: LineView, follow: bool) -> None:
        state, result = self.state, view.result
        if self.bank != view.bank:
            self.bank = view.bank
            self.bank_changed.emit(view.bank)
        self._decision = view.decision
        self.cut_changed.emit(view.decision.image.value)
        if len(result.samples) == 0:  # nothing to show yet (a decision without a result is
            return  # not a state the views expect; deciding on no parts would fail)
        shown = self.selected_name() if state.result is self._result else None
        index = 0 if follow else (result.names.index(shown) if shown in result.names else -1)
        if self.dataset is not None:
            self.dataset.samples[:] = result.samples
        if index != state.current:
            state.current = index  # before the result: the views draw it with the result
            state.set_pointed(-1)
        self._result = result
        state.set_result(result)
        state.set_decision(view.decision)  # after set_result: the batch controller re-decided

    def _dataset_changed(self, dataset: object) -> None:
        """Another folder was opened: the line would publish over it, so it stops."""
        if self.active and self.dataset is not None and dataset is not self.dataset:
            self.stop()
            self.message.emit("Line stopped: another folder was opened", 10000)

    def _decision_changed(self, decision: Decision | None) -> None:
        """A decision other than the recipe's (a policy edit) is replaced once it is out."""
        if self.active and self._decision is not None and decision is not self._decision:
            QTimer.singleShot(0, self._restore_decision)

    def _restore_decision(self) -> None:
        if self.active and self._decision is not None and self.state.decision is not self._decision:
            self.state.set_decision(self._decision)

    def _check_alarm(self) -> None:
        change = self.stats.update_alarm()
        if change == "raised":
            logger.warning("line alarm: %s", self.stats.alarm_text)
            self.message.emit(f"ALARM: {self.stats.alarm_text}", 0)
        elif change == "cleared":
            logger.info("line alarm cleared: %s", self.stats.alarm_text)
            self.message.emit(f"Alarm cleared: {self.stats.alarm_text}", 10000)
        if change is not None:
            self.alarm_changed.emit(self.stats.alarm_on, self.stats.alarm_text)

    # -- making a recipe ------------------------------------------------------------------------

    def _recipe_progressed(self, event: Progress) -> None:
        self.recipe_progressed.emit(event.fraction, f"Recipe: {event.stage}")

    def _recipe_returned(self, path: Path) -> None:
        logger.info("recipe written: %s", path)
        self.message.emit(f"Recipe written to {path}", 15000)
        self.recipe_made.emit(str(path))

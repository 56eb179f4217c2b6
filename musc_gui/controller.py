"""The session controller: what the window's actions do, kept out of the widgets.

:class:`SessionController` owns the open :class:`InspectionSession`, the background runners,
the session cache calls and the decision. Panels and actions call its methods (open a folder,
re-run, cancel, apply a config, change a cheap parameter, export, clear the cache); it writes
what follows into :class:`AppState` and reports through past-tense signals, so no widget reads
another's private state. Everything long runs on a worker thread, re-scores included.

The decision: whenever the result or the user's :class:`DecisionPolicy` changes, the controller
publishes ``decide(result, policy)``. A policy the run cannot honour (known-good parts that are
not in it, max-F1 without ground truth) is reported once and falls back towards automatic cuts.
The policy is remembered per dataset (:mod:`musc_gui.preferences`) and restored on opening.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal
from superqt.utils import qthrottled

from engine.config import MuscConfig
from engine.data.discover import discover_datasets
from engine.data.reference import with_reference
from engine.data.samples import DatasetIndex
from engine.decision import Decision, DecisionPolicy, decide
from engine.errors import MuscError
from engine.progress import Progress
from engine.session.cache import cache_usage, clear_cache
from engine.session.session import InspectionSession
from engine.session.stages import Cost, field_cost
from musc_gui import session_cache as runs
from musc_gui.preferences import load_policy, save_policy
from musc_gui.report_actions import export_job, written_folder
from musc_gui.run_progress import PLAN, RunProgress, format_bytes, format_seconds
from musc_gui.state import AppState
from musc_gui.worker import EngineRunner, error_message

RESCORE_THROTTLE_MS = 80  # at most ~12 re-scores a second while a slider is dragged


class SessionController(QObject):
    """Runs the open dataset's session and keeps the state's result and decision current.

    Signals:
        busy_changed(bool): a scoring run or an export started (True) or all ended (False).
        progressed(float, str): overall fraction of the run (never decreasing) and a label
            with the stage and the ETA of the whole run.
        message(str, int): a status line and how long to show it (ms).
        failed(str): an error the user must see (a decision problem is reported once).
        notes_changed(list, list, list): backbone choices, skipped files, warnings.
        ran(float): a scoring run returned; its wall-clock seconds from start to result.
        exported(list): an export finished; the written paths.

    Attributes:
        state: The shared application state.
        session: The open dataset's session (None before one is opened).
        runner: Runs scoring and re-scores, one at a time (they share the session).
        exporter: Runs exports (they only read a finished result).
        choose_category: Picks one of several categories of a folder; None cancels.
        last_run_s: Wall-clock seconds of the last scoring run.
        last_rescore_s: Seconds the last re-score took in the worker.
    """

    busy_changed = Signal(bool)
    progressed = Signal(float, str)
    message = Signal(str, int)
    failed = Signal(str)
    notes_changed = Signal(list, list, list)
    ran = Signal(float)
    exported = Signal(list)

    def __init__(self, state: AppState, settings: QSettings, parent: QObject | None = None):
        super().__init__(parent)
        self.state, self.settings = state, settings
        self.session: InspectionSession | None = None
        self.runner, self.exporter = EngineRunner(self), EngineRunner(self)
        self.choose_category: Callable[[list[DatasetIndex]], DatasetIndex | None] = _first
        self.last_run_s: float | None = None
        self.last_rescore_s = 0.0
        self.progress = RunProgress()
        self._job: str | None = None  # "run" or "rescore" while the runner works
        self._stale = False  # the running job belongs to a dataset that was closed
        self._queued: tuple[runs.Steps, list[str]] | None = None
        self._key = state.config  # the cache key: the config the folder was opened with
        self._pending_cheap: dict[str, Any] = {}
        self._inflight_cheap: dict[str, Any] = {}
        self._notes: list[str] = []
        self._reported: set[str] = set()
        self._started = 0.0
        self._export_folder = Path()
        self._known_good_sources: list[str] = []
        self._request_rescore = qthrottled(self._start_rescore, RESCORE_THROTTLE_MS, parent=self)
        state.policy_changed.connect(self._policy_changed)
        state.result_changed.connect(lambda _result: self.decide())
        self.runner.yielded.connect(self._progressed)
        self.runner.returned.connect(self._returned)
        self.runner.errored.connect(self._errored)
        self.runner.aborted.connect(self._aborted)
        self.runner.finished.connect(self._finished)
        self.exporter.yielded.connect(self._export_progressed)
        self.exporter.returned.connect(self._exported)
        self.exporter.errored.connect(lambda text: self.failed.emit(f"Export failed: {text}"))
        self.exporter.aborted.connect(lambda: self.message.emit("Export cancelled", 8000))
        self.exporter.finished.connect(lambda: self.busy_changed.emit(self.busy))

    # -- what the window asks -----------------------------------------------------------------

    @property
    def scoring(self) -> bool:
        """Whether a scoring run (not a re-score) is in flight."""
        return self._job == "run"

    @property
    def busy(self) -> bool:
        """Whether a scoring run or an export is in flight."""
        return self.scoring or self.exporter.running

    @property
    def idle(self) -> bool:
        """Whether nothing runs or waits to run (scoring, re-score, export, a cheap change)."""
        if self.runner.running or self.exporter.running:
            return False
        scored = self.session is not None and self.session.result is not None
        return not (self._pending_cheap and scored)  # else they wait for the next run

    def open_folder(self, folder: str | Path) -> bool:
        """Index ``folder`` and open its dataset (asking which one if it holds several).

        Returns:
            Whether a dataset was opened (errors go through :attr:`failed`).
        """
        try:
            indexes = discover_datasets(folder)
        except (MuscError, OSError) as error:
            self.failed.emit(error_message(error))
            return False
        dataset = indexes[0] if len(indexes) == 1 else self.choose_category(indexes)
        if dataset is None:
            return False
        self.open_dataset(dataset)
        return True

    def open_dataset(self, dataset: DatasetIndex, *, run: bool = True) -> None:
        """Show ``dataset`` with its remembered policy: from the cache, else scored in the back.

        Args:
            dataset: The dataset to open.
            run: False opens it without looking up the cache or scoring (see :meth:`adopt`).
        """
        if self.runner.running:  # the old session's work is not wanted any more
            self._stale = True
            self.runner.cancel()
            self.runner.wait()
        self._queued, self._pending_cheap, self._notes = None, {}, []
        self._known_good_sources: list[str] = []  # folders/globs of known-good parts added
        self._reported.clear()
        self.session = None
        self.state.set_dataset(dataset)
        self.state.set_policy(load_policy(self.settings, dataset))
        self._key = self.state.config
        if not run:
            return
        started = time.perf_counter()
        cached = runs.restore_cached(dataset, self._key)
        if cached is not None:
            self._publish(cached)
            seconds = time.perf_counter() - started
            self.message.emit(f"Restored {len(cached.result.samples)} parts from cache in "
                              f"{seconds:.1f} s", 10000)  # fmt: skip
            return
        self.session = InspectionSession(dataset, self._key)
        self._start(runs.first_run_steps(self.session, self._key), [runs.BACKBONE_STAGE])

    def adopt(self, session: InspectionSession) -> None:
        """Show a session scored elsewhere (a script's, a test's) as if it had just run here."""
        self.open_dataset(session.dataset, run=False)
        result = session.result if session.result is not None else session.rescore()
        self._publish(runs.RunOutput(session, result, session.dataset))

    def rerun(self) -> bool:
        """Rescan the folder and score again; only new and changed parts are extracted."""
        if self.state.dataset is None or self.session is None:
            return False
        try:
            found = runs.rediscover(self.state.dataset)
            for pattern in self._known_good_sources:  # parts from outside the folder stay
                found, _names = with_reference(found, pattern)
        except (MuscError, OSError) as error:
            self.failed.emit(error_message(error))
            return False
        return self._start(runs.rerun_steps(self.session, found, self._key), [runs.RESCAN_STAGE])

    def add_known_good(self, pattern: str | Path) -> bool:
        """Score a folder (or glob) of known-good parts with the batch; the cuts then come from
        them. Only the added parts are extracted; parts already in the batch are just marked."""
        if self.state.dataset is None or self.session is None:
            return False
        try:
            merged, names = with_reference(self.state.dataset, str(pattern))
        except (MuscError, OSError) as error:
            self.failed.emit(error_message(error))
            return False
        self._known_good_sources.append(str(pattern))
        steps = runs.known_good_steps(self.session, merged, names, self._key)
        return self._start(steps, [runs.RESCAN_STAGE])

    def apply_config(self, config: MuscConfig) -> None:
        """Switch to ``config``: a cached session scored with it, else recompute what is stale."""
        self.state.set_config(config)
        if self.session is not None:
            self._key = config
            self._start(runs.apply_steps(self.session, config), [runs.CACHE_STAGE])

    def set_cheap(self, **changes: Any) -> None:
        """Change cheap fields (X %, k, fusion, blur) and re-score in the back; latest wins.

        Raises:
            ValueError: A field that needs more than the read-out (use :meth:`apply_config`).
        """
        dear = [name for name in changes if field_cost(name) is not Cost.LIVE]
        if dear:
            raise ValueError(f"{', '.join(dear)} recompute more than the read-out; use Apply")
        self.state.config = self.state.config.replace(**changes)  # the panel already shows it
        self._pending_cheap.update(changes)
        self._request_rescore()

    def cancel(self) -> None:
        """Stop the running computation (and export) at its next step."""
        self._queued = None
        self.runner.cancel()
        self.exporter.cancel()
        if self.busy:
            self.progressed.emit(self.progress.fraction, "Cancelling…")

    def export(self, folder: str | Path, *, lot: str = "", operator: str = "",
               snapshots: dict[str, bytes] | None = None) -> bool:  # fmt: skip
        """Write the report of the shown result and decision into a new subfolder of ``folder``.

        Runs on the export worker; returns whether it started.
        """
        state = self.state
        if state.result is None or state.decision is None:
            self.failed.emit("Nothing to export yet: open a folder and let it score first.")
            return False
        if self.exporter.running:
            self.message.emit("An export is already running", 5000)
            return False
        steps = export_job(state.result, state.dataset, state.decision, Path(folder),
                           lot=lot, operator=operator, snapshots=snapshots)  # fmt: skip
        self._export_folder = Path(folder)
        self.exporter.start(None, steps)
        self.busy_changed.emit(True)
        self.progressed.emit(0.0, "Exporting the report…")
        return True

    def clear_cache(self) -> int | None:
        """Delete every cached session; returns the bytes freed (None when it failed)."""
        try:
            freed = clear_cache()
        except OSError as error:
            self.failed.emit(f"Could not clear the session cache: {error}")
            return None
        self.message.emit(f"Cleared the session cache: {format_bytes(freed)} freed", 10000)
        return freed

    def cache_usage(self) -> int | None:
        """Bytes the session cache holds now (None when the folder cannot be read)."""
        try:
            return cache_usage()
        except OSError:
            return None

    def decide(self) -> Decision | None:
        """Publish the decision of the shown result under the state's policy."""
        result, policy = self.state.result, self.state.policy
        decision = None
        if result is not None:
            for attempt in dict.fromkeys(_fallbacks(policy)):
                try:
                    decision = decide(result, attempt)
                    break
                except MuscError as error:
                    self._report_once(f"{error_message(error)} The automatic cuts are used "
                                      "instead.")  # fmt: skip
        if decision is not None or self.state.decision is not None:
            self.state.set_decision(decision)
        return decision

    def shutdown(self) -> None:
        """Stop and wait for every worker (closing the window)."""
        for runner in (self.runner, self.exporter):
            runner.cancel()
            runner.wait()

    # -- running ------------------------------------------------------------------------------

    def _start(self, steps: runs.Steps, prelude: list[str]) -> bool:
        if self.runner.running:  # a newer request replaces the running one
            self._queued = (steps, prelude)
            self.runner.cancel()
            return False
        self._job = "run"
        self.progress.start(prelude)
        self._started = time.perf_counter()
        self.busy_changed.emit(True)
        self.progressed.emit(0.0, "Starting…")
        self.runner.start(self.session, steps)
        return True

    def _start_rescore(self) -> None:
        session = self.session
        if not self._pending_cheap or self.runner.running or session is None:
            return  # a running job re-kicks this when it finishes
        if session.result is None:
            return  # nothing scored yet: the first run reads the state's config
        changes, self._pending_cheap = self._pending_cheap, {}
        self._inflight_cheap = changes
        self._job = "rescore"
        self._started = time.perf_counter()
        self.runner.start(session, runs.rescore_steps(session, changes))

    def _progressed(self, event: Progress) -> None:
        if self._stale or self._job != "run":
            return
        done = event.done == event.total and bool(event.message)
        if event.stage == runs.BACKBONE_STAGE and done:
            self._notes = [line for line in event.message.splitlines() if line]
            dataset = self.state.dataset
            if dataset is not None:
                self.notes_changed.emit(self._notes, dataset.skipped, dataset.warnings)
        elif event.stage == runs.RESCAN_STAGE and done:
            self.message.emit(event.message, 15000)
        fraction = self.progress.update(event)
        if event.stage != PLAN:
            self.progressed.emit(fraction, self.progress.label(event))

    def _returned(self, value: Any) -> None:
        if self._stale:
            return
        seconds = time.perf_counter() - self._started
        if self._job == "rescore":
            self.last_rescore_s = seconds
            if not self._pending_cheap:  # else newer values are waiting: this one is stale
                self.state.set_result(value)
                self.message.emit(f"Re-scored in {seconds * 1000:.0f} ms", 3000)
            return
        self._publish(value)
        self.last_run_s = seconds
        n, modality = len(value.result.samples), value.result.modality
        self.message.emit(f"Scored {n} parts ({modality}) in {format_seconds(seconds)}", 15000)
        self.ran.emit(seconds)

    def _publish(self, output: runs.RunOutput) -> None:
        self.session = output.session
        if output.dataset is not self.state.dataset:
            self.state.set_dataset(output.dataset)
        # auto backbones are resolved now; cheap edits made during the run still stand
        self.state.set_config(output.session.config.replace(**self._pending_cheap))
        self.state.set_result(output.result)
        if self.state.current < 0 and len(output.result.samples):
            self.state.set_current(int(output.result.ranking()[0]))
        session = output.session
        self.notes_changed.emit(self._notes, session.skipped, session.warnings)
        if output.known_good:  # after the result: the names are in it now
            marked = (*self.state.policy.reference, *output.known_good)
            self.state.set_policy(self.state.policy.replace(reference=tuple(dict.fromkeys(marked))))

    def _errored(self, message: str) -> None:
        if not self._stale:
            self.failed.emit(message)

    def _aborted(self) -> None:
        if self._stale:
            return
        if self._job == "rescore":  # its values still have to reach the result
            self._pending_cheap = {**self._inflight_cheap, **self._pending_cheap}
        elif self._queued is None:
            self.message.emit("Cancelled; press F5 to run again", 10000)

    def _finished(self) -> None:
        was_run = self._job == "run"
        self._job, self._stale = None, False
        if was_run:
            self.busy_changed.emit(self.busy)
        if self._queued is not None:
            steps, prelude = self._queued
            self._queued = None
            self._start(steps, prelude)
        elif self._pending_cheap:
            self._request_rescore()

    # -- decision and export ------------------------------------------------------------------

    def _policy_changed(self, policy: DecisionPolicy) -> None:
        if self.state.dataset is not None:
            save_policy(self.settings, self.state.dataset, policy)
        self.decide()

    def _report_once(self, text: str) -> None:
        if text not in self._reported:
            self._reported.add(text)
            self.failed.emit(text)

    def _export_progressed(self, event: Progress) -> None:
        count = f" {event.done}/{event.total}" if event.total > 0 else ""
        self.progressed.emit(event.fraction, f"Export: {event.stage}{count}")

    def _exported(self, written: list[Path]) -> None:
        where = written_folder(written, self._export_folder)
        self.message.emit(f"Wrote {len(written)} files to {where}", 15000)
        self.exported.emit(list(written))


def _first(indexes: list[DatasetIndex]) -> DatasetIndex | None:
    return indexes[0]


def _fallbacks(policy: DecisionPolicy) -> list[DecisionPolicy]:
    """The policy, then without known-good parts, then fully automatic (areas kept)."""
    automatic = DecisionPolicy(min_area_px=policy.min_area_px, min_area_mm2=policy.min_area_mm2)
    return [policy, policy.replace(reference=()), automatic]

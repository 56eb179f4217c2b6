"""Runs the line's loop (:func:`line_steps`) on a worker thread and queues the GUI's requests.

One long generator on an :class:`EngineRunner` (a QThread): it polls the watcher and scores
each new part there; the GUI thread only receives the events as signals. Requests (pin, unpin,
re-score) go into a thread-safe queue the loop drains between parts, so the scorer is only ever
touched by the worker. Stop sets the loop's own token (seen within ``POLL_SECONDS``) and
cancels the runner (which closes the generator at its next yield); either way the loop's
``finally`` stops the watcher before ``finished`` is emitted.
"""

from __future__ import annotations

import queue
import time
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Signal

from engine.cli_stream import open_scorer
from engine.progress import CancelToken
from musc_gui.line.line_job import (
    LineChanged,
    LineNote,
    LineSetup,
    LineStarted,
    PartScored,
    PartSkipped,
    ScorerFactory,
    WatcherFactory,
    default_watcher,
    line_steps,
)
from musc_gui.worker import EngineRunner


def wait_for(runner: EngineRunner, msecs: int) -> bool:
    """Wait until ``runner`` has cleaned up, delivering queued signals meanwhile.

    ``EngineRunner.wait`` blocks the GUI thread, but the thread's ``quit`` and the runner's
    cleanup are queued to the GUI thread: a running loop would only end at the timeout.
    """
    deadline = time.monotonic() + msecs / 1000
    while runner.running and time.monotonic() < deadline:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)
    return not runner.running


class LineRunner(QObject):
    """Starts, feeds and stops the line's worker.

    Signals:
        started(LineStarted): the recipe is loaded and the folder is watched.
        scored(PartScored): one new verdict.
        skipped(PartSkipped): a part that could not be scored.
        changed(LineChanged): a pin, unpin or re-score was applied.
        noted(LineNote): a message for the log and the status bar.
        errored(str): the line could not start or broke down (a bad recipe, no such folder).
        finished(): the worker thread ended (after a stop or an error).

    Attributes:
        scorer_factory: ``(recipe path, bank policy) -> StreamScorer``; runs on the worker.
            Tests put a scorer with a tiny backbone here.
        watcher_factory: ``(folder, needs_xyz, settle seconds) -> PartWatcher``.
    """

    started = Signal(object)
    scored = Signal(object)
    skipped = Signal(object)
    changed = Signal(object)
    noted = Signal(object)
    errored = Signal(str)
    finished = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.scorer_factory: ScorerFactory = open_scorer
        self.watcher_factory: WatcherFactory = default_watcher
        self._runner = EngineRunner(self)
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = CancelToken()
        self._runner.yielded.connect(self._dispatch)
        self._runner.errored.connect(self.errored)
        self._runner.finished.connect(self.finished)

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._runner.running

    def start(self, setup: LineSetup) -> None:
        """Start watching ``setup.folder``.

        Raises:
            RuntimeError: The line already runs (stop it and wait for ``finished``).
        """
        self._requests = queue.SimpleQueue()  # requests of a previous run are void
        self._stop = CancelToken()
        requests, stop = self._requests, self._stop
        scorer_factory, watcher_factory = self.scorer_factory, self.watcher_factory
        self._runner.start(None, lambda: line_steps(setup, requests, stop, scorer_factory,
                                                    watcher_factory))  # fmt: skip

    def stop(self) -> None:
        """Stop after the part in hand; ``finished`` follows."""
        self._stop.cancel()
        self._runner.cancel()

    def wait(self, msecs: int = 30000) -> bool:
        """Wait until the worker thread ends, handling events (closing the window, tests)."""
        return wait_for(self._runner, msecs)

    def pin(self, name: str) -> None:
        """Pin a recent part (or a bank member) into the bank, between two parts."""
        self._requests.put(("pin", name))

    def unpin(self, name: str) -> None:
        """Unpin a bank member, between two parts."""
        self._requests.put(("unpin", name))

    def rescore(self, changes: dict[str, Any]) -> None:
        """Re-score the recent parts at new X %, k or blur (no extraction), between two parts."""
        self._requests.put(("rescore", dict(changes)))

    def _dispatch(self, event: object) -> None:
        signal = {
            LineStarted: self.started,
            PartScored: self.scored,
            PartSkipped: self.skipped,
            LineChanged: self.changed,
            LineNote: self.noted,
        }.get(type(event))
        if signal is not None:
            signal.emit(event)

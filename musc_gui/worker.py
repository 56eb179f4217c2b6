"""Run engine generators off the GUI thread (superqt ``GeneratorWorker`` style).

A long engine computation is a generator of :class:`engine.progress.Progress` events that
returns its result; every ``yield`` is a progress report and a cancellation point. The worker
lives in its own :class:`QThread` and forwards those events as past-tense Qt signals:

    started -> yielded(Progress)* -> returned(result) | errored(message) | aborted -> finished

Cheap re-scores run here too (``musc_gui.session_cache.rescore_steps``): a few milliseconds on
the synthetic line, but a large batch (hundreds of parts at a fine map grid) takes long enough
to freeze the window, and the controller throttles them so a thread start per slider tick is
never paid. :func:`rescore_now` is the same re-score, synchronous, for scripts and benchmarks.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from engine.errors import CancelledError, MuscError
from engine.progress import CancelToken, Progress, run_to_completion

StepsFactory = Callable[[], Generator[Progress, None, Any]]


def error_message(error: BaseException) -> str:
    """One message for the user: the engine's own text (it names the file), else type + text."""
    if isinstance(error, MuscError):
        return str(error)
    if isinstance(error, MemoryError):
        return "Out of memory; lower the image size, the number of 3D groups or the batch size."
    text = str(error) or error.__class__.__name__
    filename = getattr(error, "filename", None)  # OSError knows the file, its str() may not
    if filename and str(filename) not in text:
        text = f"{filename}: {text}"
    return f"{error.__class__.__name__}: {text}"


class RunSignals(QObject):
    """The signals of one run, shared by :class:`EngineWorker` and :class:`EngineRunner`.

    Signals:
        started(): the generator is about to run (worker thread).
        yielded(object): one ``Progress`` event.
        returned(object): the generator's return value (e.g. a ``ScoreResult``).
        errored(str): an exception ended the run; the message names the file when the engine's
            error does.
        aborted(): the run was cancelled (``CancelledError``) or the token was set.
        finished(): always last, after returned / errored / aborted.
    """

    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(str)
    aborted = Signal()
    finished = Signal()


class EngineWorker(RunSignals):
    """Drives one generator-producing callable to completion in a worker thread."""

    def __init__(self, steps: StepsFactory, cancel: CancelToken | None = None) -> None:
        super().__init__()
        self._steps = steps
        self._cancel = cancel or CancelToken()
        self.traceback = ""  # of the last error, for a "details" box or a log

    def cancel(self) -> None:
        """Ask the run to stop at its next yield (thread-safe)."""
        self._cancel.cancel()

    @Slot()
    def work(self) -> None:
        """Run the generator; call in the worker thread (connected to ``QThread.started``)."""
        self.started.emit()
        try:
            if self._cancel.cancelled:
                raise CancelledError("cancelled before start")
            steps = self._steps()

            def forward(event: Progress) -> None:
                self.yielded.emit(event)
                if self._cancel.cancelled:  # generators that do not check the token themselves
                    steps.close()
                    raise CancelledError("cancelled by the user")

            result = run_to_completion(steps, forward)
        except CancelledError:
            self.aborted.emit()
        except Exception as error:  # the edge: every error becomes a message
            self.traceback = traceback.format_exc()
            self.errored.emit(error_message(error))
        else:
            self.returned.emit(result)
        finally:
            self.finished.emit()


class EngineRunner(RunSignals):
    """Owns at most one :class:`EngineWorker` + :class:`QThread` for an ``InspectionSession``.

    Installs a fresh ``CancelToken`` on the session before each run, so a cancelled session
    stays usable. Re-emits the worker's signals, so widgets connect once.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: EngineWorker | None = None

    @property
    def running(self) -> bool:
        """Whether a run is in flight."""
        return self._thread is not None

    def start(self, session: Any, steps: StepsFactory | None = None) -> EngineWorker:
        """Run ``steps`` (default ``session.run``) in a new thread.

        Args:
            session: An ``InspectionSession``; its ``cancel`` token is replaced by a fresh one.
                None for work that belongs to no session (an export); ``steps`` is required.
            steps: Callable returning the generator to drive.

        Raises:
            RuntimeError: A run is already in flight (cancel it and wait for ``finished``).
        """
        if self.running:
            raise RuntimeError("a run is already in progress; cancel it first")
        token = CancelToken()
        if session is not None:
            session.cancel = token
        worker = EngineWorker(steps or session.run, token)
        thread = QThread()
        worker.moveToThread(thread)
        thread.started.connect(worker.work)
        worker.started.connect(self.started)
        worker.yielded.connect(self.yielded)
        worker.returned.connect(self.returned)
        worker.errored.connect(self.errored)
        worker.aborted.connect(self.aborted)
        # direct: quit() is thread-safe, and a queued call would wait for the GUI thread, which
        # may be the one blocked in wait() (closing the window during a run)
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.finished.connect(self._cleanup)
        self._thread, self._worker = thread, worker
        thread.start()
        return worker

    def cancel(self) -> None:
        """Ask the running computation to stop at its next step; no-op when idle."""
        if self._worker is not None:
            self._worker.cancel()

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the thread ends (for shutdown and tests)."""
        return self._thread.wait(msecs) if self._thread is not None else True

    @Slot()
    def _cleanup(self) -> None:
        thread, worker = self._thread, self._worker
        self._thread = self._worker = None
        if thread is not None:
            thread.deleteLater()
        if worker is not None:
            worker.deleteLater()
        self.finished.emit()


def rescore_now(session: Any, changes: dict[str, Any]) -> tuple[Any, float]:
    """Apply cheap config changes and re-score synchronously from cached tables.

    Args:
        session: An ``InspectionSession`` that completed a run.
        changes: Cheap fields (x_percent, rscon_window, blur_sigma, fusion) to change.

    Returns:
        The new ``ScoreResult`` and the seconds it took.
    """
    started = time.perf_counter()
    if changes:
        # update() drops nothing for cheap fields; it only swaps the config (fusion included).
        session.update(session.config.replace(**changes))
    result = session.rescore()
    return result, time.perf_counter() - started

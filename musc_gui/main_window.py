"""The main window: open a folder, score it in the background, browse and tune the results.

Layout: views in the central tab area (:meth:`MainWindow.add_view`), the ranked list docked on
the left, parameters and the dataset summary docked on the right, progress in the status bar.
Engine errors reach the user once, through :attr:`MainWindow.show_error` (tests replace it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QWidget,
)

from engine.config import MuscConfig
from engine.data.discover import discover_datasets
from engine.data.samples import DatasetIndex
from engine.errors import MuscError
from engine.evaluation.thresholds import suggested_threshold
from engine.progress import Progress
from engine.session.results import ScoreResult
from engine.session.session import InspectionSession
from engine.session.stages import CACHED_STAGES
from musc_gui.panels.parameters import ParameterPanel
from musc_gui.panels.ranked_list import RankedListPanel
from musc_gui.panels.summary import SummaryPanel
from musc_gui.report_actions import install_export_action
from musc_gui.session_cache import restore_cached, run_and_save, update_run_and_save
from musc_gui.state import AppState
from musc_gui.worker import EngineRunner, error_message, rescore_now

MAX_RECENT = 8
BACKBONE_STAGE = "choose backbones"


class MainWindow(QMainWindow):
    """MuSc Inspector's window; owns the ``InspectionSession`` and the background runner.

    Attributes:
        state: The shared :class:`AppState` every panel and view is bound to.
        session: The open dataset's session (None before a folder is opened).
        show_error: Callable taking one message; a modal box by default, replace it in tests.
        last_rescore_s: Seconds the last live re-score took.
    """

    def __init__(self, config: MuscConfig | None = None, settings: QSettings | None = None):
        super().__init__()
        self.setWindowTitle("MuSc Inspector")
        self.resize(1400, 860)
        self.setAcceptDrops(True)
        self.state = AppState(config)
        self.session: InspectionSession | None = None
        self.settings = settings or QSettings("MuSc", "MuSc Inspector")
        self.runner = EngineRunner(self)
        self.show_error: Callable[[str], Any] = self._error_box
        self.choose_category: Callable[[list[DatasetIndex]], DatasetIndex | None] = self._ask
        self.last_rescore_s = 0.0
        self._notes: list[str] = []
        self._queued: tuple[Callable, bool] | None = None
        self._pending_cheap: dict[str, Any] = {}
        self._stage_started: tuple[str, float] = ("", 0.0)

        self.views = QTabWidget()
        self.views.setDocumentMode(True)
        self._placeholder = QLabel("Open a folder of parts to inspect (File → Open folder…).")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.views.addTab(self._placeholder, "Start")
        self.setCentralWidget(self.views)

        self.ranked = RankedListPanel(self.state)
        self.parameters = ParameterPanel(self.state)
        self.summary = SummaryPanel(self.state)
        self.ranked_dock = self.add_dock(
            "Ranked parts", self.ranked, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.summary_dock = self.add_dock(
            "Dataset", self.summary, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.parameters_dock = self.add_dock(
            "Parameters", self.parameters, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.tabifyDockWidget(self.summary_dock, self.parameters_dock)

        self._build_actions()
        self._build_status_bar()
        self.parameters.cheap_changed.connect(self.live_rescore)
        self.parameters.apply_requested.connect(self.apply_config)
        self.runner.yielded.connect(self._progressed)
        self.runner.returned.connect(self._returned)
        self.runner.errored.connect(self._errored)
        self.runner.aborted.connect(self._aborted)
        self.runner.finished.connect(self._finished)
        self.add_default_views()
        self.summary_dock.raise_()
        self.ranked.setMinimumWidth(440)

    # -- layout -------------------------------------------------------------------------------

    def add_view(self, name: str, widget: QWidget) -> QWidget:
        """Add a central view (2D image, 3D cloud, ...) as a tab; removes the start page."""
        index = self.views.indexOf(self._placeholder)
        if index >= 0:
            self.views.removeTab(index)
        self.views.addTab(widget, name)
        return widget

    def add_dock(self, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        """Add a side panel as a dock widget (also listed in the View menu)."""
        dock = QDockWidget(name, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def add_default_views(self) -> None:
        """Add the 2D view, 3D view and metrics panel where their modules exist.

        Each is optional so the window works while they are being written or when OpenGL is
        missing; a failure is a note in the status bar, not a crash.
        """
        candidates = (
            ("2D", "musc_gui.views.image_view", "ImageView", None),
            ("3D", "musc_gui.views.cloud_view", "CloudView", None),
            (
                "Metrics",
                "musc_gui.panels.metrics_panel",
                "MetricsPanel",
                Qt.DockWidgetArea.RightDockWidgetArea,
            ),
        )
        self.optional_views: dict[str, QWidget] = {}
        for name, module_name, class_name, area in candidates:
            try:
                module = __import__(module_name, fromlist=[class_name])
                widget = getattr(module, class_name)(self.state)
            except Exception as error:  # optional views must not stop the app
                self.statusBar().showMessage(f"{name} view unavailable: {error}", 5000)
                continue
            self.optional_views[name] = widget
            if area is None:
                self.add_view(name, widget)
            else:
                dock = self.add_dock(name, widget, area)
                self.tabifyDockWidget(self.parameters_dock, dock)

    def _build_actions(self) -> None:
        self.open_action = QAction("&Open folder…", self, shortcut=QKeySequence.StandardKey.Open)
        self.open_action.triggered.connect(self.open_dialog)
        self.cancel_action = QAction("&Cancel", self, shortcut=QKeySequence("Esc"))
        self.cancel_action.triggered.connect(self.cancel)
        self.cancel_action.setEnabled(False)
        self.rerun_action = QAction("&Re-run", self, shortcut=QKeySequence("F5"))
        self.rerun_action.triggered.connect(lambda: self.start_run(None))
        self.rerun_action.setEnabled(False)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu = self.file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.export_action = install_export_action(self, file_menu)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        run_menu = self.menuBar().addMenu("&Run")
        run_menu.addAction(self.rerun_action)
        run_menu.addAction(self.cancel_action)
        view_menu = self.menuBar().addMenu("&View")
        for dock in (self.ranked_dock, self.summary_dock, self.parameters_dock):
            view_menu.addAction(dock.toggleViewAction())
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("Main")
        for action in (self.open_action, self.rerun_action, self.cancel_action, self.export_action):
            toolbar.addAction(action)
        self._fill_recent()

    def _build_status_bar(self) -> None:
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setRange(0, 1000)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        for widget in (self.progress_label, self.progress, self.cancel_button):
            self.statusBar().addPermanentWidget(widget)
            widget.hide()

    # -- opening ------------------------------------------------------------------------------

    def open_dialog(self) -> None:
        """Ask for a folder and open it."""
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of parts")
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> bool:
        """Index ``folder``, show its summary and start scoring in the background.

        Returns:
            Whether a dataset was opened (errors are shown through :attr:`show_error`).
        """
        try:
            indexes = discover_datasets(folder)
        except (MuscError, OSError) as error:
            self.show_error(error_message(error))
            return False
        dataset = indexes[0] if len(indexes) == 1 else self.choose_category(indexes)
        if dataset is None:
            return False
        if self.runner.running:  # the old session's result is not wanted any more
            self.runner.cancel()
            self.runner.wait()
        self._queued = None
        self.session = InspectionSession(dataset, self.state.config)
        self._notes = []
        self.state.set_dataset(dataset)
        self._remember(Path(folder))
        self.setWindowTitle(f"MuSc Inspector — {dataset.category}")
        if not restore_cached(self, dataset):
            self.start_run(self._first_run_steps(self.session))
        return True

    def _first_run_steps(self, session: InspectionSession) -> Callable:
        def steps():
            key = session.config  # the cache key: backbones possibly still on "auto"
            yield Progress(BACKBONE_STAGE, 0, 1, "choosing backbones")
            lines = session.choose_backbones()  # may probe the network: not in the GUI thread
            yield Progress(BACKBONE_STAGE, 1, 1, "\n".join(lines))
            return (yield from run_and_save(session, key))

        return steps

    def _ask(self, indexes: list[DatasetIndex]) -> DatasetIndex | None:
        names = [index.category for index in indexes]
        name, ok = QInputDialog.getItem(self, "Category", "This folder holds several "
                                        "categories; open which one?", names, 0, False)  # fmt: skip
        return indexes[names.index(name)] if ok else None

    def _remember(self, folder: Path) -> None:
        recent = [str(folder.resolve())] + [
            f for f in self.recent_folders() if f != str(folder.resolve())
        ]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self._fill_recent()

    def recent_folders(self) -> list[str]:
        """Recently opened folders, newest first (from QSettings)."""
        value = self.settings.value("recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self.recent_folders():
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.open_folder(f))
        self.recent_menu.setEnabled(bool(self.recent_folders()))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """Accept a dragged local folder."""
        if self._dropped_folder(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        """Open a dropped folder."""
        folder = self._dropped_folder(event)
        if folder is not None:
            event.acceptProposedAction()
            self.open_folder(folder)

    @staticmethod
    def _dropped_folder(event: QDragEnterEvent | QDropEvent) -> Path | None:
        for url in event.mimeData().urls():
            path = Path(url.toLocalFile())
            if url.isLocalFile() and path.is_dir():
                return path
        return None

    # -- running ------------------------------------------------------------------------------

    def start_run(self, steps: Callable | None) -> bool:
        """Run ``steps`` (default ``session.run``) in the background; queue it if one runs."""
        if self.session is None:
            return False
        if self.runner.running:
            self._queued = (steps, True)
            self.runner.cancel()
            return False
        self._stage_started = ("", time.perf_counter())
        for widget in (self.progress_label, self.progress, self.cancel_button):
            widget.show()
        self.progress.setValue(0)
        self.cancel_action.setEnabled(True)
        self.rerun_action.setEnabled(False)
        self.runner.start(self.session, steps)
        return True

    def cancel(self) -> None:
        """Stop the running computation at its next step."""
        self._queued = None
        self.runner.cancel()
        self.progress_label.setText("Cancelling…")

    def apply_config(self, config: MuscConfig) -> None:
        """Switch to ``config`` and recompute only the stages it invalidates."""
        self.state.set_config(config)
        if self.session is not None:
            self.start_run(update_run_and_save(self.session, config))

    def live_rescore(self, changes: dict[str, Any]) -> None:
        """Re-score from cached tables now (GUI thread: milliseconds); deferred during a run."""
        self.state.config = self.state.config.replace(**changes)
        if self.session is None or self.session.result is None or self.runner.running:
            self._pending_cheap.update(changes)
            return
        try:
            result, self.last_rescore_s = rescore_now(self.session, changes)
        except (MuscError, ValueError) as error:
            self.show_error(error_message(error))
            return
        self.state.set_result(result)
        self.statusBar().showMessage(f"Re-scored in {self.last_rescore_s * 1000:.0f} ms", 3000)

    def _progressed(self, event: Progress) -> None:
        if event.stage == BACKBONE_STAGE and event.done == event.total:
            self._notes = [line for line in event.message.splitlines() if line]
            if self.session is not None:
                self.summary.set_session_info(self._notes, self.session.skipped,
                                              self.session.warnings)  # fmt: skip
            return
        now = time.perf_counter()
        if event.stage != self._stage_started[0]:
            self._stage_started = (event.stage, now)
        elapsed = now - self._stage_started[1]
        fraction = event.fraction
        eta = ""
        if 0 < fraction < 1 and elapsed > 0.5:
            eta = f" — about {elapsed / fraction * (1 - fraction):.0f} s left"
        total = f" {event.done}/{event.total}" if event.total > 0 else ""
        self.progress.setValue(int(fraction * 1000))
        self.progress_label.setText(f"{event.stage}{total}{eta}")

    def _returned(self, result: ScoreResult) -> None:
        session = self.session
        if session is None:
            return
        first = self.state.result is None
        self.state.set_config(session.config)  # auto backbones are now resolved
        if first:
            labels = result.labels if all(v is not None for v in result.labels) else None
            threshold, _how = suggested_threshold(result.image_scores, labels)
            self.state.set_threshold(threshold)
        self.state.set_result(result)
        if self.state.current < 0 and len(result.samples):
            self.state.set_current(int(result.ranking()[0]))
        self.summary.set_session_info(self._notes, session.skipped, session.warnings)
        # the stages only: sub-stage timings are nested inside them
        seconds = sum(result.timings.get(stage, 0.0) for stage in CACHED_STAGES)
        self.statusBar().showMessage(
            f"Scored {len(result.samples)} parts ({result.modality}) in {seconds:.1f} s", 10000
        )

    def _errored(self, message: str) -> None:
        self.show_error(message)

    def _aborted(self) -> None:
        self.statusBar().showMessage("Cancelled; press F5 to run again", 10000)

    def _finished(self) -> None:
        for widget in (self.progress_label, self.progress, self.cancel_button):
            widget.hide()
        self.cancel_action.setEnabled(False)
        self.rerun_action.setEnabled(self.session is not None)
        if self._queued is not None:
            steps, _ = self._queued
            self._queued = None
            self.start_run(steps)
        elif self._pending_cheap and self.session is not None and self.session.result:
            changes, self._pending_cheap = self._pending_cheap, {}
            self.live_rescore(changes)

    def _error_box(self, message: str) -> None:
        QMessageBox.critical(self, "MuSc Inspector", message)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop a running computation before closing."""
        self.runner.cancel()
        self.runner.wait()
        super().closeEvent(event)

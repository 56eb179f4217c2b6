"""The main window: layout, menus and the status bar; the work is the controller's.

Layout: a start page until a folder is open, then the views in the central tab area
(:meth:`MainWindow.add_view`); the ranked list docked on the left; the Decision dock on the
right above the metrics, parameters and dataset summary (tabbed); one progress bar, the ETA and
the last run's wall time in the status bar. Every action goes to the :class:`SessionController`
(:attr:`MainWindow.controller`). Engine errors reach the user once, through
:attr:`MainWindow.show_error` (tests replace it). The window fits 1280 x 800 and works at
1024 x 700.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QStandardPaths, Qt
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
    QStackedWidget,
    QTabWidget,
    QWidget,
)

from engine.config import MuscConfig
from engine.data.samples import DatasetIndex
from engine.session.session import InspectionSession
from musc_gui.controller import SessionController
from musc_gui.line.line_panel import LinePanel
from musc_gui.panels.decision_panel import DecisionPanel
from musc_gui.panels.parameters import ParameterPanel
from musc_gui.panels.ranked_list import RankedListPanel
from musc_gui.panels.summary import SummaryPanel
from musc_gui.preferences import recent_folders, remember_folder
from musc_gui.report_actions import install_export_action
from musc_gui.run_progress import format_bytes, format_seconds
from musc_gui.start_page import StartPage
from musc_gui.state import AppState
from musc_gui.worker import EngineRunner

SIZE = (1280, 800)  # the default size; the minimum width stays at or below 1024
RANKED_MIN_WIDTH = 320
VIEWS_MIN_WIDTH = 380  # the central views squeeze their control rows below this


class MainWindow(QMainWindow):
    """MuSc Inspector's window.

    Attributes:
        state: The shared :class:`AppState` every panel and view is bound to.
        controller: Runs the session, the cache, the decision and the exports.
        show_error: Callable taking one message; a modal box by default, replace it in tests.
        demo_root: Where "Open the demo" writes the synthetic line.
    """

    def __init__(self, config: MuscConfig | None = None, settings: QSettings | None = None):
        super().__init__()
        self.setWindowTitle("MuSc Inspector")
        self.setAcceptDrops(True)
        self.state = AppState(config)
        self.settings = settings or QSettings("MuSc", "MuSc Inspector")
        self.controller = SessionController(self.state, self.settings, self)
        self.controller.choose_category = lambda indexes: self.choose_category(indexes)
        self.show_error: Callable[[str], Any] = self._error_box
        self.choose_category: Callable[[list[DatasetIndex]], DatasetIndex | None] = self._ask
        app_data = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
        self.demo_root = Path(app_data or Path.home() / ".musc-inspector") / "demo"

        self.start_page = StartPage()
        self.views = QTabWidget()
        self.views.setDocumentMode(True)
        self.views.setMinimumWidth(VIEWS_MIN_WIDTH)
        self.central = QStackedWidget()
        self.central.addWidget(self.start_page)
        self.central.addWidget(self.views)
        self.setCentralWidget(self.central)

        self.ranked = RankedListPanel(self.state)
        self.ranked.setMinimumWidth(RANKED_MIN_WIDTH)
        self.decision = DecisionPanel(self.state)
        self.parameters = ParameterPanel(self.state)
        self.summary = SummaryPanel(self.state)
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.ranked_dock = self.add_dock("Ranked parts", self.ranked,
                                         Qt.DockWidgetArea.LeftDockWidgetArea)  # fmt: skip
        self.decision_dock = self.add_dock("Decision", self.decision, right)
        self.line = LinePanel(self.state, self.controller, self.ranked, self.settings)
        self.line_dock = self.add_dock("Line", self.line, right)
        self.tabifyDockWidget(self.decision_dock, self.line_dock)
        self.decision_dock.raise_()
        self.parameters_dock = self.add_dock("Parameters", self.parameters, right)
        self.summary_dock = self.add_dock("Dataset", self.summary, right)
        self.tabifyDockWidget(self.parameters_dock, self.summary_dock)
        self.add_default_views()
        self._build_actions()
        self._build_status_bar()
        self._connect()
        self._dataset_changed(None)
        width, height = SIZE
        screen = self.screen().availableGeometry() if self.screen() else None
        if screen is not None:
            width, height = min(width, screen.width()), min(height, screen.height())
        self.resize(width, height)
        # the Decision dock gets most of the right column: its verdicts and cuts are read often
        vertical, horizontal = Qt.Orientation.Vertical, Qt.Orientation.Horizontal
        self.resizeDocks([self.decision_dock, self.parameters_dock],
                         [height * 11 // 20, height * 9 // 20], vertical)  # fmt: skip
        self.resizeDocks([self.ranked_dock, self.decision_dock],
                         [RANKED_MIN_WIDTH, width * 7 // 25], horizontal)  # fmt: skip

    # -- layout -------------------------------------------------------------------------------

    def add_view(self, name: str, widget: QWidget) -> QWidget:
        """Add a central view (2D image, 3D cloud, ...) as a tab."""
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
        """Add the 2D view, the 3D view and the metrics panel where their modules load.

        A view that fails to load is a note in the status bar, not a crash; the 3D tab shows
        why it cannot draw instead (no OpenGL), and is there only for datasets with XYZ.
        """
        self.optional_views: dict[str, QWidget] = {}
        image_view = self._optional("2D", "musc_gui.views.image_view", "ImageView")
        if image_view is not None:
            self.add_view("2D", image_view)
        self.cloud_tab = self._optional("3D", "musc_gui.views.cloud_view", "CloudView")
        metrics = self._optional("Metrics", "musc_gui.panels.metrics_panel", "MetricsPanel")
        if metrics is not None:
            dock = self.add_dock("Metrics", metrics, Qt.DockWidgetArea.RightDockWidgetArea)
            self.tabifyDockWidget(self.parameters_dock, dock)
            dock.raise_()

    def _optional(self, name: str, module_name: str, class_name: str) -> QWidget | None:
        module = None
        try:
            module = importlib.import_module(module_name)
            problem = getattr(module, "opengl_problem", lambda: None)()
            if not problem:
                widget = getattr(module, class_name)(self.state)
                self.optional_views[name] = widget
                return widget
        except Exception as error:  # optional views must not stop the app
            problem = str(error) or error.__class__.__name__
        self.statusBar().showMessage(f"{name} view unavailable: {problem}", 8000)
        if name != "3D":
            return None
        words = getattr(module, "unavailable_text", None)
        reason = QLabel(words(problem) if words else f"3D view unavailable: {problem}")
        reason.setWordWrap(True)
        reason.setAlignment(Qt.AlignmentFlag.AlignCenter)
        return reason

    def _build_actions(self) -> None:
        def action(text: str, slot: Callable, shortcut: Any = None) -> QAction:
            made = QAction(text, self)
            if shortcut is not None:
                made.setShortcut(QKeySequence(shortcut))
            made.triggered.connect(slot)
            return made

        self.open_action = action("&Open folder…", self.open_dialog, QKeySequence.StandardKey.Open)
        self.demo_action = action("Open the &demo", self.open_demo)
        self.cancel_action = action("&Cancel", self.cancel, "Esc")
        self.rerun_action = action("&Re-run", self.rerun, "F5")
        self.rerun_action.setToolTip("Rescan the folder and score what is new or changed (F5)")
        self.clear_cache_action = action("Clear session &cache", self.clear_cache)
        self.line_action = action("&Line mode…", self.show_line)
        self.line_action.setToolTip("Watch a folder with a recipe and score each part as it lands")
        quit_action = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        file_menu = self.file_menu = self.menuBar().addMenu("&File")
        file_menu.addActions([self.open_action, self.demo_action])
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.export_action = install_export_action(self, file_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.clear_cache_action)
        file_menu.aboutToShow.connect(self._show_cache_usage)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        run_menu = self.menuBar().addMenu("&Run")
        run_menu.addActions([self.rerun_action, self.cancel_action, self.line_action])
        view_menu = self.menuBar().addMenu("&View")
        for dock in self.findChildren(QDockWidget):
            view_menu.addAction(dock.toggleViewAction())
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("Main")
        toolbar.addActions([self.open_action, self.rerun_action, self.cancel_action,
                            self.export_action])  # fmt: skip
        self._fill_recent()

    def _build_status_bar(self) -> None:
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setRange(0, 1000)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.run_time_label = QLabel()
        self.run_time_label.setToolTip("Wall-clock time of the last scoring run, start to result")
        for widget in (self.progress_label, self.progress, self.cancel_button):
            self.statusBar().addPermanentWidget(widget)
            widget.hide()
        self.statusBar().addPermanentWidget(self.run_time_label)

    def _connect(self) -> None:
        controller = self.controller
        controller.busy_changed.connect(self._busy_changed)
        controller.progressed.connect(self._progressed)
        controller.message.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        controller.failed.connect(lambda text: self.show_error(text))
        controller.notes_changed.connect(self.summary.set_session_info)
        controller.ran.connect(
            lambda s: self.run_time_label.setText(f"Last run: {format_seconds(s)} (wall clock)")
        )
        self.parameters.cheap_changed.connect(self._cheap_changed)
        line = self.line.controller
        line.message.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        line.failed.connect(lambda text: self.show_error(text))
        line.running_changed.connect(self._line_running)
        self.parameters.apply_requested.connect(self.apply_config)
        self.state.dataset_changed.connect(self._dataset_changed)
        self.start_page.open_requested.connect(self.open_dialog)
        self.start_page.demo_requested.connect(self.open_demo)
        self.start_page.recent_requested.connect(self.open_folder)
        self.decision.add_known.clicked.connect(self.add_known_good_dialog)

    # -- what the user does -------------------------------------------------------------------

    @property
    def session(self) -> InspectionSession | None:
        """The open dataset's session (the controller's)."""
        return self.controller.session

    @property
    def runner(self) -> EngineRunner:
        """The controller's scoring runner (tests and scripts wait on it)."""
        return self.controller.runner

    def add_known_good_dialog(self) -> None:
        """Ask for a folder of known-good parts and score it with the batch."""
        folder = QFileDialog.getExistingDirectory(self, "Folder of known-good parts")
        if folder:
            self.controller.add_known_good(folder)

    def open_dialog(self) -> None:
        """Ask for a folder and open it."""
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of parts")
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> bool:
        """Open ``folder``: restored from the cache, or scored in the background."""
        if not self.controller.open_folder(folder):
            return False
        self.start_page.set_recent(remember_folder(self.settings, folder))
        self._fill_recent()
        self.setWindowTitle(f"MuSc Inspector — {self.state.dataset.category}")
        return True

    def open_demo(self) -> bool:
        """Write the synthetic demo line into :attr:`demo_root` (once) and open it."""
        from engine.data.demo import write_demo_dataset

        folder = self.demo_root / "synthetic_line"
        if not folder.is_dir():
            self.statusBar().showMessage(f"Writing the demo line to {folder}…")
            folder = write_demo_dataset(self.demo_root)
        return self.open_folder(folder)

    def rerun(self) -> bool:
        """Rescan the folder and score again (F5); only new and changed parts are extracted."""
        return self.controller.rerun()

    def cancel(self) -> None:
        """Stop the running computation at its next step."""
        self.controller.cancel()

    def apply_config(self, config: MuscConfig) -> None:
        """Switch to ``config`` and recompute only the stages it invalidates."""
        if self.line.controller.active:  # the line scores with its recipe's configuration
            self.parameters.set_config(self.state.config)
            text = "Line mode uses the recipe's configuration; stop the line or make a new recipe"
            self.statusBar().showMessage(text, 10000)
            return
        self.controller.apply_config(config)

    def show_line(self) -> None:
        """Bring the Line dock to the front (line mode's controls)."""
        self.line_dock.show()
        self.line_dock.raise_()

    def _line_running(self, running: bool) -> None:
        if running:  # the line's read-outs are what is watched now: give them the column
            self.show_line()
            self.resizeDocks([self.line_dock, self.parameters_dock],
                             [self.height() * 3 // 4, self.height() // 4],
                             Qt.Orientation.Vertical)  # fmt: skip

    def _cheap_changed(self, changes: dict[str, Any]) -> None:
        # while the line runs, X %/k re-score its recent parts on the line's worker
        if not self.line.controller.set_cheap(changes):
            self.controller.set_cheap(**changes)

    def live_rescore(self, changes: dict[str, Any]) -> None:
        """Re-score with changed cheap fields in the background (see ``set_cheap``)."""
        self.controller.set_cheap(**changes)

    def clear_cache(self) -> int | None:
        """Delete the cached sessions; the status bar says how much was freed."""
        return self.controller.clear_cache()

    def recent_folders(self) -> list[str]:
        """Recently opened folders, newest first."""
        return recent_folders(self.settings)

    # -- reactions ----------------------------------------------------------------------------

    def _dataset_changed(self, dataset: DatasetIndex | None) -> None:
        self.central.setCurrentWidget(self.views if dataset is not None else self.start_page)
        self.start_page.set_recent(self.recent_folders())
        index = self.views.indexOf(self.cloud_tab) if self.cloud_tab is not None else -1
        if dataset is not None and dataset.has_xyz and index < 0 and self.cloud_tab is not None:
            self.add_view("3D", self.cloud_tab)
        elif (dataset is None or not dataset.has_xyz) and index >= 0:
            self.views.removeTab(index)
        self._busy_changed(self.controller.busy)

    def _busy_changed(self, busy: bool) -> None:
        for widget in (self.progress_label, self.progress, self.cancel_button):
            widget.setVisible(busy)
        if busy:
            self.progress.setValue(0)
        self.cancel_action.setEnabled(busy)
        self.rerun_action.setEnabled(self.state.dataset is not None and not self.controller.scoring)

    def _progressed(self, fraction: float, text: str) -> None:
        self.progress.setValue(round(fraction * 1000))
        self.progress_label.setText(text)

    def _show_cache_usage(self) -> None:
        usage = self.controller.cache_usage()
        shown = f" ({format_bytes(usage)})" if usage is not None else ""
        self.clear_cache_action.setText(f"Clear session &cache{shown}")

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self.recent_folders():
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.open_folder(f))
        self.recent_menu.setEnabled(bool(self.recent_folders()))

    def _ask(self, indexes: list[DatasetIndex]) -> DatasetIndex | None:
        names = [index.category for index in indexes]
        name, ok = QInputDialog.getItem(self, "Category", "This folder holds several "
                                        "categories; open which one?", names, 0, False)  # fmt: skip
        return indexes[names.index(name)] if ok else None

    def _error_box(self, message: str) -> None:
        QMessageBox.critical(self, "MuSc Inspector", message)

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

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop running work before closing."""
        self.line.controller.shutdown()
        self.controller.shutdown()
        super().closeEvent(event)

"""The Line dock: watch a folder with a recipe and see each verdict as it arrives.

Top to bottom: the recipe (Browse…, or "Make from open folder" on the scored batch), the watched
folder, the bank policy and Start/Stop; the counters; the alarm rule and its red banner; the
strip chart; the bank with Pin/Unpin. Pin and Unpin act on the part selected last, in the
ranked list or in the bank list (the line under the bank names it); the ranked list's context
menu has them too. The widgets only show :class:`LineController`'s state and call its methods.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.stream.bank import BANK_POLICIES
from musc_gui.controller import SessionController
from musc_gui.line.line_controller import RECIPE_SUFFIX, LineController
from musc_gui.line.line_model import AlarmRule
from musc_gui.line.line_widgets import AlarmBanner, BankList, CountersView
from musc_gui.line.strip_chart import StripChart
from musc_gui.panels.ranked_list import SCORE, RankedListPanel
from musc_gui.state import AppState

POLICY_TIPS = ("pinned: always the recipe's bank (and parts you pin)",
               "rolling: the last passing parts; the recipe's parts roll out",
               "both: the recipe's bank plus the last passing parts")  # fmt: skip


DEFAULT_POLICY = "both"  # as `musc watch`: the recipe's bank stays, recent good parts join
SETUP_ROWS = (0, 1, 2, 4)  # recipe, make recipe, folder, "also score" (hidden while running)


def _row(*widgets: QWidget, stretch: int = -1) -> QHBoxLayout:
    row = QHBoxLayout()
    for position, widget in enumerate(widgets):
        row.addWidget(widget, 1 if position == stretch else 0)
    return row


class LinePanel(QWidget):
    """Line mode's controls and read-outs, bound to a :class:`LineController`.

    Attributes:
        controller: What the dock's actions do.
        ask_recipe_path: ``(default path) -> path or ""`` where to save a new recipe.
        ask_recipe_file / ask_folder: ``() -> path or ""`` for the Browse buttons.
        pin_action / unpin_action: Also in the ranked list's context menu.
    """

    def __init__(self, state: AppState, session: SessionController,
                 ranked: RankedListPanel | None = None, settings: QSettings | None = None,
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.state, self.ranked, self.settings = state, ranked, settings
        self.controller = LineController(state, session, self)
        self.ask_recipe_path: Callable[[Path | None], str] = self._ask_recipe_path
        self.ask_recipe_file: Callable[[], str] = self._ask_recipe_file
        self.ask_folder: Callable[[], str] = self._ask_folder
        self._target: str | None = None  # the part Pin/Unpin act on
        self._bank_chosen = False  # chosen last in the bank list (else the ranked list's)
        self._build()
        self._connect()
        self._restore()
        self._running_changed(False)

    def _build(self) -> None:
        self.recipe_edit = QLineEdit(placeholderText="recipe file (.h5)")
        self.recipe_button = QPushButton("Browse…")
        self.make_recipe_button = QPushButton("Make from open folder")
        self.make_recipe_button.setToolTip(
            "Make a recipe from the folder open now (scored as a batch): its passing parts "
            "become the bank"
        )
        self.recipe_progress = QProgressBar(textVisible=True)
        self.recipe_progress.setRange(0, 1000)
        self.recipe_progress.hide()
        self.folder_edit = QLineEdit(placeholderText="folder the line writes parts into")
        self.folder_button = QPushButton("Browse…")
        self.policy_combo = QComboBox()
        self.policy_combo.addItems(BANK_POLICIES)
        self.policy_combo.setToolTip("\n".join(POLICY_TIPS))
        self.existing_check = QCheckBox("Also score the parts already there")
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.counters = CountersView()
        self.alarm_percent = QDoubleSpinBox(minimum=0.0, maximum=100.0, decimals=0, suffix=" %")
        self.alarm_window = QSpinBox(minimum=1, maximum=1000)
        for spin in (self.alarm_percent, self.alarm_window):
            spin.setToolTip("Alarm when more than this share of the last this many parts fail")
        rule = AlarmRule()
        self.alarm_percent.setValue(rule.percent)
        self.alarm_window.setValue(rule.window)
        self.alarm_banner = AlarmBanner()
        self.chart = StripChart()
        self.bank_label = QLabel("Bank")
        self.bank_list = BankList()
        self.bank_list.setMaximumHeight(96)
        self.target_label = QLabel()
        self.pin_button = QPushButton("Pin")
        self.unpin_button = QPushButton("Unpin")
        self.pin_action = QAction("Pin into the line's bank", self)
        self.unpin_action = QAction("Unpin from the line's bank", self)

        self.watching_label = QLabel()  # replaces the setup rows while the line runs
        self.watching_label.setWordWrap(True)
        self.watching_label.hide()
        form = self.form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Recipe:", _row(self.recipe_edit, self.recipe_button, stretch=0))
        form.addRow("", _row(self.make_recipe_button, self.recipe_progress, stretch=1))
        form.addRow("Folder:", _row(self.folder_edit, self.folder_button, stretch=0))
        form.addRow("Bank:", _row(self.policy_combo, QWidget(), self.start_button, stretch=1))
        form.addRow("", self.existing_check)
        alarm = QHBoxLayout()
        for widget in (QLabel("Alarm above"), self.alarm_percent, QLabel("fails of the last"),
                       self.alarm_window):  # fmt: skip
            alarm.addWidget(widget)
        alarm.addStretch(1)
        # in a scroll area: the dock shares the right column and must not widen the window
        content = QWidget()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        layout = QVBoxLayout(content)
        layout.addWidget(self.watching_label)
        layout.addLayout(form)
        layout.addWidget(self.counters)
        layout.addLayout(alarm)
        layout.addWidget(self.alarm_banner)
        layout.addWidget(self.chart, 1)
        layout.addWidget(self.bank_label)
        layout.addWidget(self.bank_list)
        layout.addLayout(_row(self.target_label, self.pin_button, self.unpin_button, stretch=0))

    def _connect(self) -> None:
        line = self.controller
        self.recipe_button.clicked.connect(self._browse_recipe)
        self.folder_button.clicked.connect(self._browse_folder)
        self.make_recipe_button.clicked.connect(self.make_recipe)
        self.start_button.clicked.connect(self.toggle)
        self.alarm_percent.valueChanged.connect(self._alarm_edited)
        self.alarm_window.valueChanged.connect(self._alarm_edited)
        for trigger, act in ((self.pin_button.clicked, line.pin),
                             (self.unpin_button.clicked, line.unpin),
                             (self.pin_action.triggered, line.pin),
                             (self.unpin_action.triggered, line.unpin)):  # fmt: skip
            trigger.connect(lambda _=False, act=act: act(self._target))
        line.running_changed.connect(self._running_changed)
        line.counters_changed.connect(self._counters_changed)
        line.alarm_changed.connect(self.alarm_banner.set_alarm)
        line.bank_changed.connect(self._bank_changed)
        line.cut_changed.connect(self.chart.set_cut)
        line.recipe_progressed.connect(self._recipe_progressed)
        line.recipe_made.connect(self.recipe_edit.setText)
        self.bank_list.chosen.connect(lambda _name: self._choose(bank=True))
        self.state.current_changed.connect(lambda _index: self._choose(bank=False))
        self.state.result_changed.connect(lambda _result: self._refresh_target())
        if self.ranked is not None:
            self.ranked.extra_actions += [self.pin_action, self.unpin_action]

    # -- actions ----------------------------------------------------------------------------------

    def toggle(self) -> bool:
        """Start the line with the dock's settings, or stop it."""
        if self.controller.active:
            self.controller.stop()
            return False
        self._remember()
        return self.controller.start(self.recipe_edit.text().strip(),
                                     self.folder_edit.text().strip(),
                                     self.policy_combo.currentText(),
                                     self.existing_check.isChecked())  # fmt: skip

    def make_recipe(self) -> bool:
        """Ask where to save, then make a recipe from the open batch on the worker."""
        path = self.ask_recipe_path(self.controller.default_recipe_path())
        return bool(path) and self.controller.make_recipe(path)

    # -- controller -> widgets ------------------------------------------------------------------

    def _running_changed(self, running: bool) -> None:
        self.start_button.setText("Stop" if running else "Start")
        self.policy_combo.setEnabled(not running)
        for row in SETUP_ROWS:  # the dock shares a column: room for the chart and the bank
            self.form.setRowVisible(row, not running)
        recipe, folder = Path(self.recipe_edit.text()), Path(self.folder_edit.text())
        self.watching_label.setText(f"Watching <b>{html.escape(folder.name)}</b> with "
                                    f"{html.escape(recipe.name)}")  # fmt: skip
        self.watching_label.setToolTip(f"{folder}\n{recipe}")
        self.watching_label.setVisible(running)
        self._refresh_target()
        if self.ranked is not None:  # newest first while the line runs; worst first after
            order = Qt.SortOrder.AscendingOrder if running else Qt.SortOrder.DescendingOrder
            self.ranked.table.sortByColumn(-1 if running else SCORE, order)

    def _counters_changed(self) -> None:
        stats = self.controller.stats
        self.counters.set_counters(stats.counters())
        self.chart.set_points(*stats.chart_data())

    def _bank_changed(self, bank: tuple) -> None:
        pinned = sum(entry.pinned for entry in bank)
        self.bank_label.setText(f"Bank: {len(bank)} parts, {pinned} pinned")
        self.bank_list.set_bank(bank)
        self._refresh_target()

    def _choose(self, bank: bool) -> None:
        self._bank_chosen = bank
        self._refresh_target()

    def _refresh_target(self) -> None:
        """Point Pin/Unpin at the part chosen last (bank list or ranked list)."""
        if self._bank_chosen and self.bank_list.selected_name() is not None:
            name = self.bank_list.selected_name()
        else:
            name = self.controller.selected_name()
        self._target = name
        active = self.controller.active and name is not None
        in_bank = any(entry.name == name for entry in self.controller.bank)
        self.target_label.setText(f"Selected: {name}" if name else "Select a part")
        for widget in (self.pin_button, self.pin_action):
            widget.setEnabled(active)
        for widget in (self.unpin_button, self.unpin_action):
            widget.setEnabled(active and in_bank)

    def _recipe_progressed(self, fraction: float, text: str) -> None:
        self.recipe_progress.setVisible(self.controller.recipe_runner.running)
        self.recipe_progress.setValue(round(fraction * 1000))
        self.recipe_progress.setFormat(text or "%p%")
        self.make_recipe_button.setEnabled(not self.controller.recipe_runner.running)

    def _alarm_edited(self) -> None:
        self.controller.set_alarm(self.alarm_window.value(), self.alarm_percent.value())

    # -- dialogs and settings -------------------------------------------------------------------

    def _browse_recipe(self) -> None:
        path = self.ask_recipe_file()
        if path:
            self.recipe_edit.setText(path)

    def _browse_folder(self) -> None:
        folder = self.ask_folder()
        if folder:
            self.folder_edit.setText(folder)

    def _ask_recipe_path(self, default: Path | None) -> str:
        path, _ = QFileDialog.getSaveFileName(self, "Save the recipe", str(default or ""),
                                              f"MuSc recipe (*{RECIPE_SUFFIX} *.h5)")  # fmt: skip
        return path

    def _ask_recipe_file(self) -> str:
        path, _ = QFileDialog.getOpenFileName(self, "Open a recipe", self.recipe_edit.text(),
                                              f"MuSc recipe (*{RECIPE_SUFFIX} *.h5)")  # fmt: skip
        return path

    def _ask_folder(self) -> str:
        return QFileDialog.getExistingDirectory(self, "Folder the line writes parts into",
                                                self.folder_edit.text())  # fmt: skip

    def _remember(self) -> None:
        if self.settings is not None:
            self.settings.setValue("line/recipe", self.recipe_edit.text())
            self.settings.setValue("line/folder", self.folder_edit.text())
            self.settings.setValue("line/policy", self.policy_combo.currentText())

    def _restore(self) -> None:
        if self.settings is not None:
            self.recipe_edit.setText(str(self.settings.value("line/recipe", "")))
            self.folder_edit.setText(str(self.settings.value("line/folder", "")))
            self.policy_combo.setCurrentText(
                str(self.settings.value("line/policy", DEFAULT_POLICY))
            )

"""The Line dock's small widgets: the counters row, the alarm banner and the bank list."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QGridLayout, QLabel, QListWidget, QListWidgetItem, QWidget

from musc_gui.line.line_job import BankEntry
from musc_gui.line.line_model import Counters, format_counters

COUNTER_TIPS = {
    "Parts": "Parts scored since the line started",
    "Fails": "Parts that failed the recipe's image cut since the line started",
    "Fail rate": "Fails / parts since the line started",
    "Parts/min": "Arrival rate over the last 20 parts",
    "Latency": "Last part: from its files being complete to its verdict on screen",
    "p95": "95th percentile of the latency over the last 50 parts",
    "Skipped": "Parts that could not be scored (unreadable or missing files); see the log",
}
PINNED_MARK = "●"  # in every UI font (a pin emoji is a box without an emoji font)
COLUMNS = 2  # counters per row: the dock is about 330 px wide


class CountersView(QWidget):
    """Label/value pairs in rows: parts, fails, fail rate, parts/min, latency, p95, skipped."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(0)
        self.values: dict[str, QLabel] = {}
        bold = QFont()
        bold.setBold(True)
        for position, name in enumerate(COUNTER_TIPS):
            row, column = divmod(position, COLUMNS)
            title, value = QLabel(f"{name}:"), QLabel("–")
            value.setFont(bold)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            for label in (title, value):
                label.setToolTip(COUNTER_TIPS[name])
            layout_column = 2 * column
            grid.addWidget(title, row, layout_column, Qt.AlignmentFlag.AlignRight)
            grid.addWidget(value, row, layout_column + 1)
            self.values[name] = value
        grid.setColumnStretch(2 * COLUMNS - 1, 1)

    def set_counters(self, counters: Counters) -> None:
        """Show ``counters``."""
        for name, text in format_counters(counters).items():
            self.values[name].setText(text)

    def text(self, name: str) -> str:
        """The shown value of counter ``name`` (e.g. "Fail rate")."""
        return self.values[name].text()


class AlarmBanner(QLabel):
    """A red bar with the alarm's reason; hidden while there is no alarm."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setStyleSheet("QLabel { background: #c62828; color: white; font-weight: bold; "
                           "padding: 4px; border-radius: 3px; }")  # fmt: skip
        self.hide()

    def set_alarm(self, on: bool, text: str) -> None:
        """Show the alarm with ``text``, or hide it."""
        self.setText(f"ALARM: {text}" if on else "")
        self.setVisible(on)


class BankList(QListWidget):
    """The bank's members; pinned ones come first, marked and in bold.

    Signals:
        chosen(str): the user selected a member (its name).
    """

    chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip(f"The parts new parts are scored against; {PINNED_MARK} = pinned (never "
                        "rolls out)")  # fmt: skip
        self.currentItemChanged.connect(self._current_changed)

    def set_bank(self, bank: tuple[BankEntry, ...]) -> None:
        """Show ``bank`` (keeps the selected member when it is still there)."""
        selected = self.selected_name()
        self.blockSignals(True)
        self.clear()
        for entry in sorted(bank, key=lambda e: not e.pinned):  # pinned first, then slot order
            item = QListWidgetItem(f"{PINNED_MARK} {entry.name}" if entry.pinned else entry.name)
            item.setData(Qt.ItemDataRole.UserRole, entry.name)
            font = item.font()
            font.setBold(entry.pinned)
            item.setFont(font)
            self.addItem(item)
            if entry.name == selected:
                self.setCurrentItem(item)
        self.blockSignals(False)

    def entries(self) -> list[tuple[str, bool]]:
        """(name, pinned) of each shown member, in bank order."""
        return [(self.item(i).data(Qt.ItemDataRole.UserRole),
                 self.item(i).font().bold()) for i in range(self.count())]  # fmt: skip

    def selected_name(self) -> str | None:
        """The selected member's name, or None."""
        item = self.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _current_changed(self, current: QListWidgetItem | None, _previous: object) -> None:
        if current is not None:
            self.chosen.emit(current.data(Qt.ItemDataRole.UserRole))

"""A layout that places widgets left to right and wraps them onto new rows (Qt's flow example).

View toolbars use it so that their controls stay readable at a 1024 px window, where a view may
get only ~550 px: a row of combo boxes and sliders wraps instead of squeezing every control.
"""

from __future__ import annotations

from PySide6.QtCore import QMargins, QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLayout, QLayoutItem, QWidget


class FlowLayout(QLayout):
    """Items in rows, wrapped at the layout's width; height follows the number of rows."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 8) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing = spacing
        self.setContentsMargins(QMargins(4, 2, 4, 2))

    def addItem(self, item: QLayoutItem) -> None:
        """Qt override: append an item (``addWidget`` ends here)."""
        self._items.append(item)

    def count(self) -> int:
        """Qt override: number of items."""
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        """Qt override: the item at ``index`` or None."""
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        """Qt override: remove and return the item at ``index``."""
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        """Qt override: the layout never asks for more room than its rows need."""
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        """Qt override: the height depends on how many rows the width allows."""
        return True

    def heightForWidth(self, width: int) -> int:
        """Qt override: height of the rows at ``width``."""
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        """Qt override: lay the items out inside ``rect``."""
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:
        """Qt override: the widest item (the layout can always wrap down to it)."""
        return self.minimumSize()

    def minimumSize(self) -> QSize:
        """Qt override: the largest minimum size of any item, plus margins."""
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        margins = self.contentsMargins()
        return size + QSize(margins.left() + margins.right(), margins.top() + margins.bottom())

    def _place(self, rect: QRect, move: bool) -> int:
        margins = self.contentsMargins()
        area = rect.adjusted(margins.left(), margins.top(), -margins.right(), -margins.bottom())
        x, y, row_height = area.x(), area.y(), 0
        for item in self._items:
            if item.isEmpty():  # hidden widgets take no room
                continue
            hint = item.sizeHint().expandedTo(item.minimumSize())
            if x > area.x() and x + hint.width() > area.right() + 1:
                x, y, row_height = area.x(), y + row_height + self._spacing, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self._spacing
            row_height = max(row_height, hint.height())
        return y + row_height - rect.y() + margins.bottom()


def labelled(label: str, widget: QWidget, tooltip: str | None = None) -> QWidget:
    """A label and its control in one box, so that a flow layout never separates them."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(4)
    caption = QLabel(label)
    caption.setBuddy(widget)
    row.addWidget(caption)
    row.addWidget(widget)
    if tooltip:
        caption.setToolTip(tooltip)
        widget.setToolTip(tooltip)
    return box

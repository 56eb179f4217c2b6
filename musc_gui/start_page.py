"""The page shown before a folder is open: what to do, in three ways, and the recent folders."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

INTRO = (
    "<h2>MuSc Inspector</h2>"
    "<p>Finds defective parts in a batch of images (and 3D point maps) without any training: "
    "every part is compared with all the others.</p>"
    "<p><b>Open a folder</b> of parts to inspect, or <b>drop a folder</b> anywhere on this "
    "window. No data at hand? <b>Try the demo</b>: a synthetic product line of 27 parts with "
    "scratches, spots, dents and bumps.</p>"
)


def _short(folder: str, limit: int = 48) -> str:
    """The end of a long path, so that a deep folder does not widen the window."""
    return folder if len(folder) <= limit else "…" + folder[-(limit - 1) :]


class StartPage(QWidget):
    """Buttons to open a folder, open the demo or reopen a recent folder.

    Signals:
        open_requested(): the user wants to choose a folder.
        demo_requested(): the user wants the bundled demo line.
        recent_requested(str): the user picked a recent folder.
    """

    open_requested = Signal()
    demo_requested = Signal()
    recent_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        self.open_button = QPushButton("Open folder…")
        self.demo_button = QPushButton("Open the demo")
        self.demo_button.setToolTip("Write the synthetic demo line to the app's data folder and "
                                    "score it (about a minute on a laptop CPU)")  # fmt: skip
        self.open_button.clicked.connect(self.open_requested)
        self.demo_button.clicked.connect(self.demo_requested)
        buttons = QHBoxLayout()
        for button in (self.open_button, self.demo_button):
            button.setMinimumHeight(34)
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.recent_title = QLabel("<b>Recent folders</b>")
        self.recent = QVBoxLayout()
        # a column of readable width in the middle; the wrapped text takes the height it needs
        column = QWidget()
        column.setMaximumWidth(560)
        inside = QVBoxLayout(column)
        inside.addWidget(intro)
        inside.addLayout(buttons)
        inside.addSpacing(12)
        inside.addWidget(self.recent_title)
        inside.addLayout(self.recent)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(column, 4)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addLayout(row)
        layout.addStretch(2)
        self.set_recent([])

    def set_recent(self, folders: list[str]) -> None:
        """List ``folders`` as buttons (newest first); the title hides when there are none."""
        while self.recent.count():
            widget = self.recent.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        for folder in folders[:5]:
            button = QPushButton(_short(folder))
            button.setToolTip(folder)
            button.setFlat(True)
            button.setStyleSheet("text-align: left; color: palette(link)")
            button.clicked.connect(lambda _=False, f=folder: self.recent_requested.emit(f))
            self.recent.addWidget(button, 0, Qt.AlignmentFlag.AlignLeft)
        self.recent_title.setVisible(bool(folders))

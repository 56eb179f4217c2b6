"""Dropping a folder on the window opens it; dropping a file does not."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from musc_gui.main_window import MainWindow


def _drop(window: MainWindow, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime,
        Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    window.dropEvent(event)


def test_dropping_a_folder_opens_it(monkeypatch, qtbot, tmp_path: Path) -> None:
    window = MainWindow()
    qtbot.addWidget(window)
    opened = []
    monkeypatch.setattr(window, "open_folder", lambda folder: opened.append(Path(folder)))
    (tmp_path / "line").mkdir()
    (tmp_path / "note.txt").write_text("x")
    _drop(window, tmp_path / "note.txt")
    assert opened == []
    _drop(window, tmp_path / "line")
    assert opened == [tmp_path / "line"]

"""Dragging a folder onto the window opens it; a file or a non-file payload is refused.

The drag goes the way a real one does: enter, move and drop events are sent to the window's
QWindow, and Qt's own widget-window code picks the widget under the cursor and hands the event
to the nearest ancestor that accepts drops. So a window that does not call ``setAcceptDrops``
or whose ``dragEnterEvent`` does not accept the proposed action fails here, which calling
``dropEvent`` directly would not notice.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from musc_gui.main_window import MainWindow

BUTTONS, MODIFIERS = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier


def _mime(path: Path | None = None, text: str | None = None) -> QMimeData:
    mime = QMimeData()
    if path is not None:
        mime.setUrls([QUrl.fromLocalFile(str(path))])
    if text is not None:
        mime.setText(text)
    return mime


def _drag(window: MainWindow, mime: QMimeData, where: QPoint) -> bool:
    """Drag ``mime`` over ``where`` (window coordinates) and drop it if the window takes it.

    Returns:
        Whether the drag was accepted (entering and moving over the window, with a copy).
    """
    handle = window.windowHandle()
    pos = QPointF(where)
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, BUTTONS, MODIFIERS)
    QApplication.sendEvent(handle, enter)
    # like QGuiApplicationPrivate::processDrag: the move that follows starts out accepted with
    # the enter's action when the enter was accepted, ignored otherwise
    move = QDragMoveEvent(pos, Qt.DropAction.CopyAction, mime, BUTTONS, MODIFIERS)
    if enter.isAccepted() and enter.dropAction() != Qt.DropAction.IgnoreAction:
        move.setDropAction(enter.dropAction())
        move.accept()
    QApplication.sendEvent(handle, move)
    accepted = enter.isAccepted() and move.isAccepted()
    if not accepted:
        QApplication.sendEvent(handle, QDragLeaveEvent())  # what Qt sends when the drag moves on
        return False
    assert move.dropAction() == Qt.DropAction.CopyAction
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, BUTTONS, MODIFIERS)
    QApplication.sendEvent(handle, drop)
    assert drop.isAccepted()
    return True


@pytest.fixture
def window(monkeypatch, qtbot):
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.opened = []
    monkeypatch.setattr(window, "open_folder", lambda folder: window.opened.append(Path(folder)))
    return window


def _places(window: MainWindow) -> dict[str, QPoint]:
    """Where a user drops: on the central view, on a side panel, on the menu bar."""
    central = window.centralWidget()
    ranked = window.ranked
    return {
        "central view": central.mapTo(window, central.rect().center()),
        "ranked list": ranked.mapTo(window, ranked.rect().center()),
        "menu bar": window.menuBar().mapTo(window, QPoint(5, 5)),
    }


def test_dragging_a_folder_is_accepted_and_opens_it(window, tmp_path: Path) -> None:
    folder = tmp_path / "line"
    folder.mkdir()
    for name, where in _places(window).items():
        window.opened.clear()
        assert _drag(window, _mime(folder), where), f"a folder dragged over the {name} refused"
        assert window.opened == [folder], name


def test_a_file_or_text_is_refused(window, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("x")
    where = _places(window)["central view"]
    assert not _drag(window, _mime(note), where)
    assert not _drag(window, _mime(text=str(tmp_path)), where)  # a path as text is no folder
    assert not _drag(window, _mime(tmp_path / "missing"), where)
    assert window.opened == []
    # and the window still takes a folder after refusing those
    assert _drag(window, _mime(tmp_path), where)
    assert window.opened == [tmp_path]

"""File → Export report from the main window, and ``musc-gui --demo``."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from musc_gui.main_window import MainWindow
from musc_gui.report_actions import export_to


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _window_with_result(qtbot, scored_line) -> MainWindow:
    session, result = scored_line
    window = MainWindow()
    qtbot.addWidget(window)
    window.errors = []
    window.show_error = window.errors.append
    window.state.dataset = session.dataset
    window.state.set_threshold(float(sorted(result.image_scores)[-4]))  # the top 4 fail
    window.state.set_result(result)
    return window


def test_export_writes_a_report_naming_each_failing_part(qtbot, scored_line, tmp_path: Path):
    window = _window_with_result(qtbot, scored_line)
    assert window.export_action.isEnabled()
    written = export_to(window, tmp_path / "report")
    assert written and not window.errors
    result = scored_line[1]
    relative = {p.relative_to(tmp_path / "report").as_posix() for p in written}
    assert {"report.pdf", "report.html", "report.csv", "report.json"} <= relative
    assert {f"masks/{name}.png" for name in result.names} <= relative
    assert any(name.startswith("ply/") and name.endswith(".ply") for name in relative)
    html = next(p for p in written if p.suffix == ".html")
    parser = _Text()
    parser.feed(html.read_text())
    text = " ".join(parser.text)
    for index in result.ranking()[:4]:
        assert result.samples[index].name in text
    pdf = next(p for p in written if p.suffix == ".pdf")
    assert pdf.read_bytes().startswith(b"%PDF")


def test_export_keeps_existing_files_when_the_user_says_no(qtbot, scored_line, tmp_path: Path):
    window = _window_with_result(qtbot, scored_line)
    first = export_to(window, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in first}
    assert export_to(window, tmp_path, ask_overwrite=lambda paths: False) is None
    assert {p: p.stat().st_mtime_ns for p in first} == before


def test_export_to_an_unwritable_place_is_reported_once(qtbot, scored_line):
    window = _window_with_result(qtbot, scored_line)
    assert export_to(window, "/proc/musc-report") is None
    assert len(window.errors) == 1 and "/proc/musc-report" in window.errors[0]
    assert window.state.result is scored_line[1]  # nothing computed is lost


def test_demo_flag_writes_and_opens_the_bundled_line(monkeypatch, qtbot, tmp_path: Path):
    import musc_gui.__main__ as entry

    opened = []
    monkeypatch.setattr(entry.MainWindow, "open_folder", lambda self, f: opened.append(Path(f)))
    window = entry.build_window(["--demo", str(tmp_path)])
    qtbot.addWidget(window)
    assert opened == [tmp_path / "synthetic_line"]
    assert len(list((tmp_path / "synthetic_line" / "test").glob("*/xyz/*.tiff"))) == 27


def test_report_embeds_a_3d_snapshot_per_failing_part(qtbot, scored_line, tmp_path: Path):
    from PySide6.QtGui import QColor, QImage

    from musc_gui.report_actions import capture_3d_snapshots

    window = _window_with_result(qtbot, scored_line)
    shown = []

    class _FakeGL:  # stands in for the OpenGL widget, which needs a real display
        def grabFramebuffer(self):  # noqa: N802 - Qt's name
            shown.append(window.state.current)
            image = QImage(8, 8, QImage.Format.Format_RGB32)
            image.fill(QColor("orange"))
            return image

    class _FakeCloudView:
        gl_view = _FakeGL()

    window.optional_views["3D"] = _FakeCloudView()
    window.state.set_current(0)
    snapshots = capture_3d_snapshots(window)
    result = scored_line[1]
    failing = [i for i in result.ranking() if result.image_scores[i] >= window.state.threshold]
    with_points = [result.samples[i].name for i in failing if result.points[i] is not None]
    assert sorted(snapshots) == sorted(with_points) and shown
    assert all(png.startswith(b"\x89PNG") for png in snapshots.values())
    assert window.state.current == 0  # the selection is restored
    written = export_to(window, tmp_path / "report")
    html = next(p for p in written if p.suffix == ".html").read_text()
    assert html.count("data:image/png;base64") >= 3 * len(with_points)

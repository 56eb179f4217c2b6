"""The window's layout: fits 1024 x 700, start page, the 3D tab only where it can mean something."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import QDockWidget, QLabel

from musc_gui.main_window import MainWindow


def _tabs(window: MainWindow) -> list[str]:
    return [window.views.tabText(i) for i in range(window.views.count())]


def test_minimum_width_fits_a_1024_screen_with_every_dock(make_window, fresh_session):
    window = make_window()
    window.controller.adopt(fresh_session)  # views and panels filled, 3D tab present
    docks = window.findChildren(QDockWidget)
    assert {d.objectName() for d in docks} >= {"Ranked parts", "Decision", "Parameters",
                                               "Dataset", "Metrics"}  # fmt: skip
    assert all(d.isVisible() for d in docks if d.objectName() in ("Ranked parts", "Decision"))
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024, f"minimum width {hint.width()} px does not fit 1024"
    assert hint.height() <= 700, f"minimum height {hint.height()} px does not fit 700"
    window.resize(1024, 700)
    assert window.width() == 1024 and window.height() == 700
    assert window.centralWidget().width() >= 300  # the image still has room


def test_default_size_fits_1280_by_800(make_window):
    window = make_window()
    assert window.width() <= 1280 and window.height() <= 800


def test_start_page_until_a_folder_is_open(make_window, fresh_session):
    window = make_window()
    assert window.central.currentWidget() is window.start_page
    assert "drop a folder" in window.start_page.findChild(QLabel).text()
    window.controller.adopt(fresh_session)
    assert window.central.currentWidget() is window.views
    assert "2D" in _tabs(window)


def test_open_demo_writes_the_line_once_and_opens_it(make_window, tmp_path, monkeypatch):
    window = make_window()
    window.demo_root = tmp_path / "app-data" / "demo"
    opened = []
    monkeypatch.setattr(window, "open_folder", lambda folder: opened.append(folder) or True)
    window.start_page.demo_button.click()
    folder = window.demo_root / "synthetic_line"
    assert opened == [folder] and len(list(folder.glob("test/*/rgb/*.png"))) == 27
    stamp = next(folder.glob("test/*/rgb/*.png")).stat().st_mtime_ns
    window.open_demo()  # the second time it is not rewritten (the session cache still hits)
    assert opened == [folder, folder]
    assert next(folder.glob("test/*/rgb/*.png")).stat().st_mtime_ns == stamp


def test_no_3d_tab_without_xyz(make_window, fresh_session):
    window = make_window()
    window.controller.adopt(fresh_session)
    assert "3D" in _tabs(window)
    dataset = fresh_session.dataset
    flat = replace(dataset, samples=[replace(s, xyz_path=None) for s in dataset.samples])
    window.state.set_dataset(flat)
    assert "3D" not in _tabs(window)
    window.state.set_dataset(dataset)
    assert _tabs(window).count("3D") == 1


def test_3d_tab_says_why_without_opengl(make_window, fresh_session, monkeypatch):
    import musc_gui.views.cloud_view as cloud_view

    monkeypatch.setattr(cloud_view, "opengl_problem", lambda: "no OpenGL 2.1 here", raising=False)
    window = make_window()
    window.controller.adopt(fresh_session)
    tab = window.views.widget(_tabs(window).index("3D"))
    assert isinstance(tab, QLabel) and "no OpenGL 2.1 here" in tab.text()
    assert "3D" not in window.optional_views


def test_clear_cache_menu_item_reports_the_bytes_freed(make_window):
    from engine.session.cache import cache_dir

    cached = cache_dir() / f"{'ab' * 32}.h5"  # a session file: 64 hex digits
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"x" * 2_500_000)
    window = make_window()
    window.file_menu.aboutToShow.emit()
    assert "2.5 MB" in window.clear_cache_action.text()
    window.clear_cache_action.trigger()
    assert not cached.exists() and "2.5 MB freed" in window.statusBar().currentMessage()

"""Benchmark of the desktop app as a user feels it: does the window ever freeze, and how long
do the things a user waits for take?

Measured with a 10 ms QTimer on the GUI thread: the longest gap between two of its ticks is the
longest time the window did not respond (a "freeze"). Offscreen, so drawing is cheap but real.

1. open the folder -> scores and decision shown (scoring runs on the worker thread);
2. a slider drag: 9 moves of X % and k, 60 ms apart (re-scores run on the worker, throttled),
   -> the last value's result shown;
3. export of the report (HTML, PDF, masks, PLY) on the worker;
4. the session cache: its size on disk, and re-opening the folder in a new window.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_gui.py [FOLDER]   # default cable_gland
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# a private session cache, so the first open really scores and the re-open really restores
os.environ["MUSC_CACHE_DIR"] = tempfile.mkdtemp(prefix="musc-bench-cache-")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from bench.common import CABLE_GLAND
from engine.session.cache import cache_usage
from musc_gui.main_window import MainWindow


class FreezeMeter:
    """Longest gap between ticks of a 10 ms GUI-thread timer while it runs."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))

    def __enter__(self) -> FreezeMeter:
        self.ticks = [time.perf_counter()]
        self.timer.start(10)
        return self

    def __exit__(self, *_: object) -> None:
        self.timer.stop()
        self.ticks.append(time.perf_counter())

    @property
    def longest_ms(self) -> float:
        return 1000 * max(b - a for a, b in zip(self.ticks, self.ticks[1:], strict=False))


def pump(app: QApplication, until: Callable[[], bool], limit_s: float = 1800) -> None:
    started = time.perf_counter()
    while not until() and time.perf_counter() - started < limit_s:
        app.processEvents()
        time.sleep(0.002)


def window(settings: QSettings) -> MainWindow:
    made = MainWindow(settings=settings)
    made.show_error = lambda message: print("error:", message)
    made.resize(1280, 800)
    made.show()
    return made


def main() -> None:
    folder = sys.argv[1] if len(sys.argv) > 1 else str(CABLE_GLAND)
    app = QApplication.instance() or QApplication(sys.argv)
    scratch = Path(tempfile.mkdtemp(prefix="musc-bench-gui-"))
    settings = QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat)
    first = window(settings)
    done = lambda w=first: w.controller.idle and w.state.decision is not None  # noqa: E731
    with FreezeMeter() as meter:
        started = time.perf_counter()
        first.open_folder(folder)
        pump(app, done)
        opened_s = time.perf_counter() - started
    result = first.state.result
    print(f"folder {folder}: N={len(result.samples)}, modality {result.modality}")
    print(f"open -> scores and decision shown: {opened_s:.1f} s; longest freeze "
          f"{meter.longest_ms:.0f} ms")  # fmt: skip

    moves = [("x_percent", v) for v in (10.0, 20.0, 25.0, 35.0, 40.0, 50.0)]
    moves += [("rscon_window", v) for v in (3, 5, 9)]
    with FreezeMeter() as meter:
        for name, value in moves:
            first.live_rescore({name: value})
            pump(app, lambda: False, 0.06)
        last_move = time.perf_counter()
        pump(app, lambda: first.controller.idle and first.state.config.rscon_window == 9)
        settled_s = time.perf_counter() - last_move
    print(f"slider drag, {len(moves)} moves 60 ms apart: last value shown {settled_s * 1000:.0f} "
          f"ms after the last move; longest freeze {meter.longest_ms:.0f} ms")  # fmt: skip

    with FreezeMeter() as meter:
        started = time.perf_counter()
        first.controller.export(scratch / "reports", lot="bench", operator="bench")
        pump(app, lambda: first.controller.idle)
        export_s = time.perf_counter() - started
    failing = int(first.state.decision.fails(result.image_scores).sum())
    print(f"export (HTML, PDF, masks, PLY; {failing} failing parts): {export_s:.1f} s; "
          f"longest freeze {meter.longest_ms:.0f} ms")  # fmt: skip
    print(f"session cache on disk: {cache_usage() / 2**20:.0f} MiB")
    first.close()

    again = window(settings)
    started = time.perf_counter()
    again.open_folder(folder)
    pump(app, lambda: again.controller.idle and again.state.decision is not None)
    app.processEvents()
    print(f"re-open the scored folder (session cache, views drawn): "
          f"{time.perf_counter() - started:.2f} s")  # fmt: skip
    again.close()


if __name__ == "__main__":
    main()

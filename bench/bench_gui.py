"""Benchmark of the desktop app: first result, live re-score of a slider move, re-open from cache.

The live re-score is timed the way a user feels it: from the slider value to every view and
panel having redrawn (engine re-score + state signal + all connected views), offscreen.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_gui.py [FOLDER]   # default cable_gland
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# a private session cache, so the first open really scores and the re-open really restores
os.environ["MUSC_CACHE_DIR"] = tempfile.mkdtemp(prefix="musc-bench-cache-")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtWidgets import QApplication

from bench.common import CABLE_GLAND
from musc_gui.main_window import MainWindow


def main() -> None:
    """Open the folder, wait for the scores, then move X% and k like a slider would."""
    folder = sys.argv[1] if len(sys.argv) > 1 else str(CABLE_GLAND)
    app = QApplication.instance() or QApplication(sys.argv)
    window = MainWindow()
    window.show_error = lambda message: print("error:", message)
    window.resize(1400, 900)
    window.show()
    started = time.perf_counter()
    window.open_folder(folder)
    while window.state.result is None or window.runner.running:
        app.processEvents()
        time.sleep(0.01)
    first = time.perf_counter() - started
    result = window.state.result
    timings = []
    for x_percent in (10.0, 20.0, 25.0, 35.0, 40.0, 50.0):
        t0 = time.perf_counter()
        window.live_rescore({"x_percent": x_percent})
        app.processEvents()  # let every view redraw
        timings.append(time.perf_counter() - t0)
    for window_k in (3, 5, 9):
        t0 = time.perf_counter()
        window.live_rescore({"rscon_window": window_k})
        app.processEvents()
        timings.append(time.perf_counter() - t0)
    timings.sort()
    print(f"folder {folder}: N={len(result.samples)}, modality {result.modality}")
    print(f"first result (open -> scored, background thread): {first:.1f} s")
    print(
        f"live re-score incl. redraw, {len(timings)} slider moves: median "
        f"{timings[len(timings) // 2] * 1000:.0f} ms, max {timings[-1] * 1000:.0f} ms"
    )
    window.close()
    # a new window on the same folder restores the cached session instead of scoring again
    reopened = MainWindow()
    reopened.show_error = lambda message: print("error:", message)
    reopened.show()
    started = time.perf_counter()
    reopened.open_folder(folder)
    while reopened.state.result is None or reopened.runner.running:
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()
    seconds = time.perf_counter() - started
    print(f"re-open a scored folder (session cache, views drawn): {seconds:.2f} s")
    reopened.close()


if __name__ == "__main__":
    main()

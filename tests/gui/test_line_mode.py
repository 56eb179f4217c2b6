"""Line mode: watch a folder with a recipe; parts copied in appear with verdicts, newest first.

A tiny synthetic line (64 px, the fake ``PixelPatchBackbone``) makes the recipe; the line's
runner gets a scorer factory with that backbone, since ``build_backbones`` would build the
recipe's real network. The parts dropped into the watched folder are the batch's own files under
new names: its good parts pass (well under the cut) and its defective ones fail (2x above it).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.readers import read_rgb
from engine.data.synthetic import write_synthetic_dataset
from engine.progress import run_to_completion
from engine.session.session import InspectionSession
from engine.stream.bank import Bank
from engine.stream.recipe import load_recipe, save_recipe
from engine.stream.recipe_create import make_recipe
from engine.stream.scorer import StreamScorer
from engine.stream.watch import PartWatcher
from musc_gui.line.line_model import AlarmRule, LineStats, PartRecord
from musc_gui.panels.ranked_list import VERDICT
from tests.engine.fakes import PixelPatchBackbone

CONFIG = MuscConfig(backbone="pixel_patches", eval_size=64, device="cpu", modality="2d")
SETTLE = 0.1
WAIT_MS = 20_000


def _painted(path, out, colour):
    """``path``'s image with a 32 x 32 block of ``colour`` in the middle: a glaring defect."""
    image = np.array(Image.open(path).convert("RGB"))
    image[16:48, 16:48] = colour
    Image.fromarray(image).save(out)
    return out


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """(recipe path, good part files, defective part files) of a small synthetic batch.

    The defective parts are good ones with a red or green block: with the fake backbone they
    score 3-6x the cut, while the synthetic line's own small defects are within its noise.
    """
    tmp = tmp_path_factory.mktemp("line")
    root = tmp / "batch"
    write_synthetic_dataset(root, n_good=6, n_per_defect=1, size=64, seed=3)
    dataset = discover_dataset(root)
    session = InspectionSession(dataset, CONFIG, backbone=PixelPatchBackbone())
    made = run_to_completion(make_recipe(dataset, CONFIG, session=session))
    recipe = save_recipe(made.recipe, tmp / "line.musc-recipe.h5")
    goods = sorted((root / "test" / "good").glob("*.png"))
    defects = [_painted(goods[0], tmp / "red.png", (255, 0, 0)),
               _painted(goods[2], tmp / "green.png", (0, 255, 0))]  # fmt: skip
    return recipe, goods, defects


class Recorder:
    """Scorer and watcher factories with the fake backbone that note what ran where."""

    def __init__(self, keep_recent: int = 50, delay: float = 0.0) -> None:
        self.keep_recent, self.delay = keep_recent, delay
        self.threads: set[int] = set()
        self.watchers: list[PartWatcher] = []
        self.scorer: StreamScorer | None = None

    def scorer_factory(self, path, policy):
        recipe = load_recipe(path)
        bank = Bank(recipe.members, policy, rolling_size=len(recipe.members))
        scorer = StreamScorer(recipe.config, recipe.modality, bank, recipe.image_cut,
                              recipe.pixel_cut, backbone=PixelPatchBackbone(),
                              keep_recent=self.keep_recent)  # fmt: skip
        score_new = scorer.score_new

        def recorded(sample):
            self.threads.add(threading.get_ident())
            time.sleep(self.delay)
            return score_new(sample)

        scorer.score_new = recorded
        self.scorer = scorer
        return scorer

    def watcher_factory(self, folder, needs_xyz, settle):
        self.watchers.append(PartWatcher(folder, needs_xyz=needs_xyz, settle_seconds=settle))
        return self.watchers[-1]


@pytest.fixture
def line_window(make_window, tmp_path):
    """(window, watched folder, recorder): a window whose line scores with the fake backbone."""

    def make(recorder: Recorder | None = None):
        window = make_window()
        recorder = recorder or Recorder()
        line = window.line.controller
        line.settle_seconds = SETTLE
        line.runner.scorer_factory = recorder.scorer_factory
        line.runner.watcher_factory = recorder.watcher_factory
        made.append(window)
        folder = tmp_path / "incoming"
        folder.mkdir(exist_ok=True)
        return window, folder, recorder

    made = []
    yield make
    for window in made:
        window.line.controller.shutdown()


def start(qtbot, window, recipe, folder, policy="pinned"):
    panel = window.line
    panel.recipe_edit.setText(str(recipe))
    panel.folder_edit.setText(str(folder))
    panel.policy_combo.setCurrentText(policy)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.bank_list.count() > 0, timeout=WAIT_MS)  # started


def drop(qtbot, window, source, folder, name):
    """Copy one part into the watched folder and wait for its verdict (or its skip)."""
    stats = window.line.controller.stats
    before = stats.parts + stats.skipped
    shutil.copyfile(source, folder / f"{name}.png")
    qtbot.waitUntil(lambda: stats.parts + stats.skipped > before, timeout=WAIT_MS)


def shown(window):
    """(name, verdict text) of the ranked list's rows, top to bottom."""
    panel, result = window.ranked, window.state.result
    return [(result.names[sample], panel.proxy.data(panel.proxy.index(row, VERDICT)))
            for row, sample in enumerate(panel.visible_samples())]  # fmt: skip


def test_parts_copied_into_the_watched_folder_appear_newest_first_with_verdicts(
    qtbot, line_window, batch
):
    recipe, goods, defects = batch
    window, folder, recorder = line_window()
    start(qtbot, window, recipe, folder, policy="rolling")
    order = [("p0_good", goods[0]), ("p1_good", goods[1]), ("p2_bad", defects[0]),
             ("p3_good", goods[2])]  # fmt: skip
    for name, source in order:
        drop(qtbot, window, source, folder, name)
    assert shown(window) == [("p3_good", "pass"), ("p2_bad", "FAIL"), ("p1_good", "pass"),
                             ("p0_good", "pass")]  # fmt: skip
    counters = window.line.counters
    assert [counters.text(n) for n in ("Parts", "Fails", "Fail rate", "Skipped")] == [
        "4", "1", "25.0 %", "0"]  # fmt: skip
    assert counters.text("Latency").endswith(" ms") and counters.text("Parts/min") != "–"
    assert window.line.chart.point_counts() == (3, 1)
    bank = [name for name, _pinned in window.line.bank_list.entries()]
    assert "p2_bad" not in bank and {"p0_good", "p1_good", "p3_good"} <= set(bank)
    assert threading.get_ident() not in recorder.threads  # scored on the worker
    assert window.state.decision.image == recorder.scorer.image_cut  # the recipe's cut
    # the newest part is selected and drawn in the 2D view
    assert window.state.current == 0
    image = window.optional_views["2D"].image_item.image
    np.testing.assert_array_equal(image, read_rgb(folder / "p3_good.png"))


def test_a_clicked_part_stays_selected_while_new_parts_arrive(qtbot, line_window, batch):
    recipe, goods, _ = batch
    window, folder, _ = line_window()
    start(qtbot, window, recipe, folder)
    for i in range(3):
        drop(qtbot, window, goods[i], folder, f"p{i}")
    table = window.ranked.table
    rect = table.visualRect(window.ranked.proxy.index(2, 0))  # the oldest part, p0
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.state.result.names[window.state.current] == "p0"
    drop(qtbot, window, goods[3], folder, "p3")
    assert window.state.result.names[window.state.current] == "p0"
    assert [name for name, _ in shown(window)] == ["p3", "p2", "p1", "p0"]
    image = window.optional_views["2D"].image_item.image
    np.testing.assert_array_equal(image, read_rgb(folder / "p0.png"))


def test_the_list_holds_only_the_scorers_recent_parts(qtbot, line_window, batch):
    recipe, goods, _ = batch
    window, folder, _ = line_window(Recorder(keep_recent=2))
    start(qtbot, window, recipe, folder)
    for i in range(3):
        drop(qtbot, window, goods[i], folder, f"p{i}")
    assert [name for name, _ in shown(window)] == ["p2", "p1"]
    assert window.line.counters.text("Parts") == "3"


def test_the_alarm_fires_when_the_fail_rate_over_the_last_m_exceeds_p(
    qtbot, line_window, batch, caplog
):
    recipe, goods, defects = batch
    window, folder, _ = line_window()
    panel = window.line
    panel.alarm_window.setValue(4)
    panel.alarm_percent.setValue(25)
    start(qtbot, window, recipe, folder)
    caplog.set_level(logging.INFO, logger="musc_gui.line")
    parts = [goods[0], defects[0], goods[1], goods[2]]  # 1 of 4 fails: 25 %, not above
    for i, source in enumerate(parts):
        drop(qtbot, window, source, folder, f"p{i}")
    assert not panel.alarm_banner.isVisible()
    drop(qtbot, window, defects[1], folder, "p4")  # the last 4: 2 fail, 50 %
    assert panel.alarm_banner.isVisible()
    assert "2 of the last 4 parts failed" in panel.alarm_banner.text()
    assert any("alarm" in r.message and r.levelno == logging.WARNING for r in caplog.records)
    assert window.statusBar().currentMessage().startswith("ALARM")
    for i in range(5, 8):  # three good parts: 1 of the last 4 fails again
        drop(qtbot, window, goods[i - 2], folder, f"p{i}")
    assert not panel.alarm_banner.isVisible()


def test_the_alarm_rule_waits_for_m_parts_and_counts_only_the_last_m():
    def record(verdict, at):
        return PartRecord("p", 0.0, verdict, at, 0.1 * (at + 1))

    stats = LineStats(AlarmRule(window=3, percent=50))
    for at, verdict in enumerate(["fail", "fail"]):
        stats.add(record(verdict, at))
    assert stats.update_alarm() is None  # 2 of 2 fail, but fewer than M parts
    stats.add(record("pass", 2))
    assert stats.update_alarm() == "raised"  # 2 of 3: 67 % > 50 %
    stats.add(record("pass", 3))
    assert stats.update_alarm() == "cleared"  # the last 3: 1 fail
    counters = stats.counters()
    assert (counters.parts, counters.fails, counters.fail_rate) == (4, 2, 50.0)
    assert counters.per_minute == pytest.approx(60.0)  # 3 gaps in 3 s
    assert counters.last_latency_ms == pytest.approx(400.0)
    assert counters.p95_latency_ms == pytest.approx(385.0)  # of 100, 200, 300, 400 ms


def test_pin_and_unpin_change_the_bank_list(qtbot, line_window, batch):
    recipe, goods, _ = batch
    window, folder, _ = line_window()
    panel = window.line
    start(qtbot, window, recipe, folder)
    size = panel.bank_list.count()
    drop(qtbot, window, goods[0], folder, "p0")
    window.state.set_current(0)  # p0 selected in the ranked list
    assert panel.pin_button.isEnabled() and not panel.unpin_button.isEnabled()
    qtbot.mouseClick(panel.pin_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ("p0", True) in panel.bank_list.entries(), timeout=WAIT_MS)
    assert panel.bank_list.count() == size + 1 and panel.bank_label.text().startswith(
        f"Bank: {size + 1} parts"
    )
    member = next(i for i in range(size + 1) if panel.bank_list.item(i).text().endswith("p0"))
    panel.bank_list.setCurrentRow(member)  # acts on the bank list's selection now
    assert panel.unpin_button.isEnabled()
    qtbot.mouseClick(panel.unpin_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.bank_list.count() == size, timeout=WAIT_MS)
    assert "p0" not in [name for name, _ in panel.bank_list.entries()]


def test_a_corrupt_part_is_logged_and_skipped_and_later_parts_still_arrive(
    qtbot, line_window, batch, caplog, tmp_path
):
    recipe, goods, _ = batch
    window, folder, _ = line_window()
    start(qtbot, window, recipe, folder)
    caplog.set_level(logging.INFO, logger="musc_gui.line")
    data = goods[0].read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])  # a valid header, half the pixels
    drop(qtbot, window, truncated, folder, "p0_broken")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"no image at all")  # discovery cannot even read a header
    drop(qtbot, window, garbage, folder, "p1_garbage")
    drop(qtbot, window, goods[1], folder, "p2")
    assert [name for name, _ in shown(window)] == ["p2"]
    counters = window.line.counters
    assert (counters.text("Parts"), counters.text("Skipped")) == ("1", "2")
    for name in ("p0_broken", "p1_garbage"):
        skipped = [r for r in caplog.records if name in r.message]
        assert skipped and skipped[0].levelno == logging.WARNING
    assert window.line.controller.active and window.errors == []


def test_stop_ends_the_worker_and_the_watcher(qtbot, line_window, batch):
    recipe, goods, _ = batch
    window, folder, recorder = line_window()
    start(qtbot, window, recipe, folder)
    drop(qtbot, window, goods[0], folder, "p0")
    line = window.line.controller
    with qtbot.waitSignal(line.runner.finished, timeout=WAIT_MS):
        qtbot.mouseClick(window.line.start_button, Qt.MouseButton.LeftButton)
    assert not line.active and window.line.start_button.text() == "Start"
    with pytest.raises(RuntimeError, match="start"):
        recorder.watchers[-1].poll(0)  # stopped: it has to be started again
    shutil.copyfile(goods[1], folder / "p1.png")
    qtbot.wait(int(1000 * (SETTLE + 0.5)))
    assert line.stats.parts == 1 and [name for name, _ in shown(window)] == ["p0"]


def test_the_window_stays_responsive_while_a_part_scores(qtbot, line_window, batch):
    recipe, goods, _ = batch
    window, folder, _ = line_window(Recorder(delay=1.0))
    start(qtbot, window, recipe, folder)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(50)
    drop(qtbot, window, goods[0], folder, "p0")
    timer.stop()
    assert len(ticks) >= 10 and np.diff(ticks).max() < 0.5  # never blocked for the second
    latency = window.line.counters.text("Latency")  # file complete -> verdict, scoring included
    assert float(latency.removesuffix(" ms")) >= 1000


def test_x_percent_changes_rescore_the_line_on_its_worker(qtbot, line_window, batch):
    recipe, goods, defects = batch
    window, folder, recorder = line_window()
    start(qtbot, window, recipe, folder)
    for i, source in enumerate([goods[0], defects[0]]):
        drop(qtbot, window, source, folder, f"p{i}")
    before = window.state.result.image_scores.copy()
    window.parameters.cheap_changed.emit({"x_percent": 80.0})
    qtbot.waitUntil(lambda: window.state.config.x_percent == 80.0
                    and recorder.scorer.config.x_percent == 80.0, timeout=WAIT_MS)  # fmt: skip
    qtbot.waitUntil(lambda: not np.allclose(window.state.result.image_scores, before),
                    timeout=WAIT_MS)  # fmt: skip
    assert window.state.result.names == ["p1", "p0"]  # still the line's parts
    assert window.controller.session is None  # the batch controller never re-scored


def test_the_line_keeps_the_recipes_cut_when_the_policy_changes(qtbot, line_window, batch):
    recipe, goods, _ = batch
    window, folder, recorder = line_window()
    start(qtbot, window, recipe, folder)
    drop(qtbot, window, goods[0], folder, "p0")
    window.state.set_policy(window.state.policy.replace(image=123.0))  # typed in the panel
    qtbot.waitUntil(lambda: window.state.decision.image == recorder.scorer.image_cut,
                    timeout=WAIT_MS)  # fmt: skip
    qtbot.wait(50)
    assert window.state.decision.image == recorder.scorer.image_cut


def test_make_recipe_from_the_open_folder(qtbot, make_window, batch, tmp_path):
    recipe, goods, _ = batch
    root = goods[0].parent.parent.parent
    window = make_window()
    session = InspectionSession(discover_dataset(root), CONFIG, backbone=PixelPatchBackbone())
    run_to_completion(session.run())
    window.controller.adopt(session)
    panel = window.line
    asked = []
    target = tmp_path / "made.musc-recipe.h5"
    panel.ask_recipe_path = lambda default: asked.append(default) or str(target)
    with qtbot.waitSignal(panel.controller.recipe_made, timeout=WAIT_MS):
        qtbot.mouseClick(panel.make_recipe_button, Qt.MouseButton.LeftButton)
    assert asked == [root / f"{root.name}.musc-recipe.h5"]
    assert panel.recipe_edit.text() == str(target)
    made = load_recipe(target)
    assert sorted(m.name for m in made.members) == sorted(load_recipe(recipe).calibration["bank"])
    qtbot.waitUntil(lambda: not panel.recipe_progress.isVisible(), timeout=WAIT_MS)
    assert window.errors == []


def test_opening_another_folder_stops_the_line(qtbot, line_window, batch):
    recipe, goods, _ = batch
    window, folder, _ = line_window()
    start(qtbot, window, recipe, folder)
    drop(qtbot, window, goods[0], folder, "p0")
    session = InspectionSession(discover_dataset(goods[0].parent.parent.parent), CONFIG,
                                backbone=PixelPatchBackbone())  # fmt: skip
    run_to_completion(session.run())
    with qtbot.waitSignal(window.line.controller.runner.finished, timeout=WAIT_MS):
        window.controller.adopt(session)
    assert window.state.result.names == session.result.names  # the batch, not the line


def test_a_file_that_is_no_recipe_is_refused_with_a_message(qtbot, line_window, tmp_path):
    window, folder, _ = line_window()
    bogus = tmp_path / "bogus.musc-recipe.h5"
    bogus.write_bytes(b"not hdf5")
    panel = window.line
    panel.recipe_edit.setText(str(bogus))
    panel.folder_edit.setText(str(folder))
    with qtbot.waitSignal(panel.controller.runner.finished, timeout=WAIT_MS):
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert len(window.errors) == 1 and window.errors[0].startswith("Line mode could not start")
    assert str(bogus) in window.errors[0] and panel.start_button.text() == "Start"
    assert panel.recipe_edit.isVisible()  # the setup rows are back

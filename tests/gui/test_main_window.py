"""MainWindow end to end on a small synthetic 2D+3D line (offscreen), scored for real."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.config import MuscConfig
from engine.data.synthetic import DEFECT_TYPES, DEFECT_TYPES_3D, write_synthetic_dataset
from engine.session.session import InspectionSession
from engine.session.stages import CACHED_STAGES
from musc_gui.run_progress import format_seconds

TIMEOUT = 180_000


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "line"
    return write_synthetic_dataset(root, n_good=6, n_per_defect=1, seed=3, with_xyz=True,
                                   defects=DEFECT_TYPES + DEFECT_TYPES_3D)  # fmt: skip


@pytest.fixture
def window(make_window):
    return make_window()


def _open_and_wait(qtbot, window, folder, wait_idle):
    with qtbot.waitSignal(window.state.decision_changed, timeout=TIMEOUT,
                          check_params_cb=lambda d: d is not None):  # fmt: skip
        assert window.open_folder(folder)
    wait_idle(window)


def test_open_scores_ranks_decides_and_rescores_live(qtbot, window, demo_folder, wait_idle):
    _open_and_wait(qtbot, window, demo_folder, wait_idle)
    state, result = window.state, window.state.result
    assert window.errors == []
    assert len(result.samples) == len(state.dataset.samples)
    top = [result.samples[i].label for i in window.ranked.visible_samples()[:3]]
    assert sum(top) >= 2  # defective parts rank first
    assert state.current == int(result.ranking()[0])
    assert "Samples" in window.summary.plain_text()
    assert window.recent_folders()[0].endswith("line")
    # the default decision: automatic cuts from the lowest-scoring parts, never silently harsh
    decision = state.decision
    assert decision.image.source == "auto" and state.threshold == decision.image.value
    failing = int(decision.fails(result.image_scores).sum())
    if failing * 2 > len(result.samples):
        assert "more than half" in window.decision.notes_text(), "most parts fail, unannounced"
    else:
        assert window.decision.notes_text() == ""
    assert window.decision.counts.text().startswith(f"{failing} fail")

    cache = dict(window.session._cache)
    extracts = []
    backbone = window.session.backbone
    original = backbone.extract
    backbone.extract = lambda *a, **k: extracts.append(1) or original(*a, **k)
    before = result.image_scores.copy()
    with qtbot.waitSignal(state.result_changed, timeout=30_000):
        window.parameters.editors["x_percent"].slider.setValue(50)  # X% = 5.09, in the back
    wait_idle(window)
    after = state.result
    assert after is not result and after.config.x_percent == pytest.approx(5.09)
    assert not np.allclose(before, after.image_scores)
    assert extracts == []
    assert all(window.session._cache[k] is v for k, v in cache.items())


def test_progress_never_goes_back_and_the_wall_time_is_shown(
    qtbot, window, demo_folder, wait_idle, monkeypatch
):
    original = InspectionSession.choose_backbones

    def slow_choice(self):  # time outside every stage: a sum of stage timings misses it
        time.sleep(0.5)
        return original(self)

    monkeypatch.setattr(InspectionSession, "choose_backbones", slow_choice)
    values, labels = [], []
    window.progress.valueChanged.connect(values.append)
    window.controller.progressed.connect(lambda _f, text: labels.append(text))
    started = time.perf_counter()
    with qtbot.waitSignal(window.controller.ran, timeout=TIMEOUT):
        window.open_folder(demo_folder)
    outside = time.perf_counter() - started
    wait_idle(window)
    stages = {text.split(" ")[0] for text in labels}
    assert len(stages) >= 4, f"one bar across the stages expected; saw {sorted(stages)}"
    assert values and all(b >= a for a, b in zip(values, values[1:], strict=False)), values
    assert max(values) >= 900
    seconds = window.controller.last_run_s
    timings = window.state.result.timings
    assert sum(timings.get(stage, 0.0) for stage in CACHED_STAGES) + 0.45 <= seconds <= outside
    assert format_seconds(seconds) in window.run_time_label.text()
    assert window.progress.isHidden()


def test_typed_threshold_survives_rescore_apply_and_reopen(
    qtbot, make_window, demo_folder, wait_idle
):
    window = make_window()
    _open_and_wait(qtbot, window, demo_folder, wait_idle)
    state, panel = window.state, window.decision
    value = round(float(np.median(state.result.image_scores)), 4)
    panel.image_spin.lineEdit().selectAll()
    qtbot.keyClicks(panel.image_spin.lineEdit(), str(value))
    qtbot.keyClick(panel.image_spin.lineEdit(), Qt.Key.Key_Return)
    assert state.decision.image.value == value and state.decision.image.source == "user"

    with qtbot.waitSignal(state.result_changed, timeout=30_000):  # a slider move re-scores
        window.parameters.editors["x_percent"].slider.setValue(80)
    wait_idle(window)
    assert state.decision.image.value == value, "the typed cut was lost by a re-score"

    window.parameters.editors["c_thr"].widget.setValue(0.03)
    with qtbot.waitSignal(window.controller.ran, timeout=TIMEOUT):
        window.parameters.apply()
    wait_idle(window)
    assert window.session.config.c_thr == pytest.approx(0.03)
    assert state.decision.image.value == value, "the typed cut was lost by Apply"
    assert panel.image_spin.value() == value and not panel.image_auto.isChecked()

    reopened = make_window()
    with qtbot.waitSignal(reopened.state.decision_changed, timeout=TIMEOUT,
                          check_params_cb=lambda d: d is not None):  # fmt: skip
        reopened.open_folder(demo_folder)
    wait_idle(reopened)
    assert reopened.state.policy.image == value
    assert reopened.state.decision.image.value == value, "the typed cut was lost on reopening"
    assert reopened.decision.image_spin.value() == value
    assert reopened.errors == [] and window.errors == []


def test_cancel_mid_run_keeps_window_usable(qtbot, window, demo_folder, wait_idle):
    window.runner.yielded.connect(lambda e: e.stage == "extract 2D" and window.cancel())
    with qtbot.waitSignal(window.runner.aborted, timeout=TIMEOUT):
        window.open_folder(demo_folder)
    wait_idle(window)
    assert window.state.result is None and window.errors == []
    assert window.rerun_action.isEnabled() and window.progress.isHidden()
    assert "Cancelled" in window.statusBar().currentMessage()
    window.runner.yielded.disconnect()
    with qtbot.waitSignal(window.controller.ran, timeout=TIMEOUT):
        window.rerun_action.trigger()
    wait_idle(window)
    assert window.state.result is not None and window.state.decision is not None


def test_apply_expensive_change_keeps_2d_features(qtbot, window, demo_folder, wait_idle):
    _open_and_wait(qtbot, window, demo_folder, wait_idle)
    tokens = window.session._cache["extract 2D"]
    window.parameters.editors["c_thr"].widget.setValue(0.03)
    with qtbot.waitSignal(window.controller.ran, timeout=TIMEOUT):
        window.parameters.apply()
    wait_idle(window)
    assert window.session.config.c_thr == pytest.approx(0.03)
    assert window.session._cache["extract 2D"] is tokens


def test_bad_folder_shows_one_error(window, tmp_path):
    assert not window.open_folder(tmp_path / "missing")
    assert len(window.errors) == 1 and "missing" in window.errors[0]


def test_engine_error_reaches_the_user_once(qtbot, make_window, tmp_path, wait_idle):
    from PIL import Image

    folder = tmp_path / "two"
    folder.mkdir()
    Image.new("RGB", (64, 64)).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    window = make_window(MuscConfig(modality="2d", backbone="efficientnet_lite0"))
    if window.open_folder(folder):
        wait_idle(window)
    assert len(window.errors) == 1
    assert "two" in window.errors[0]


def test_main_entry_point(monkeypatch, qtbot, demo_folder):
    import musc_gui.__main__ as entry

    opened = []
    monkeypatch.setattr(entry.MainWindow, "open_folder", lambda self, f: opened.append(f))
    monkeypatch.setattr(entry.QApplication, "exec", lambda self: 0)
    assert entry.main(["musc-gui", str(demo_folder)]) == 0
    assert opened == [str(demo_folder)]

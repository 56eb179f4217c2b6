"""SessionController: re-scores off the GUI thread, the decision and its fallbacks, the cache.

Most tests adopt the shared scored line (``fresh_session``) instead of scoring, so they take
well under a second each; the end-to-end runs are in test_main_window.py.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QTimer

from engine.decision import DecisionPolicy
from engine.session.session import InspectionSession
from musc_gui.controller import SessionController
from musc_gui.run_progress import format_bytes
from musc_gui.session_cache import rescan_words
from musc_gui.state import AppState


@pytest.fixture
def controller(qtbot, settings, fresh_session):
    state = AppState(fresh_session.config)
    made = SessionController(state, settings)
    made.errors = []
    made.failed.connect(made.errors.append)
    made.adopt(fresh_session)
    yield made
    made.shutdown()


def _slow_rescore(monkeypatch, session, seconds, threads=None):
    original = session.rescore

    def slow(*args, **kwargs):
        if threads is not None:
            threads.append(threading.current_thread())
        time.sleep(seconds)
        return original(*args, **kwargs)

    monkeypatch.setattr(session, "rescore", slow)


def test_adopted_session_gets_a_decision(controller):
    decision = controller.state.decision
    assert decision is not None and decision.image.source == "auto"
    assert controller.state.threshold == decision.image.value
    assert controller.state.current == int(controller.state.result.ranking()[0])


def test_rescore_runs_off_the_gui_thread_and_the_loop_keeps_turning(qtbot, controller, monkeypatch):
    threads = []
    _slow_rescore(monkeypatch, controller.session, 0.6, threads)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    before = controller.state.result
    with qtbot.waitSignal(controller.state.result_changed, timeout=10_000):
        controller.set_cheap(x_percent=12.0)
    timer.stop()
    assert threads and threads[0] is not threading.main_thread()
    # a blocked GUI thread would have fired the 10 ms timer once or twice in 0.6 s
    assert len(ticks) >= 20, f"the event loop turned {len(ticks)} times during a 0.6 s re-score"
    assert controller.state.result is not before
    assert controller.state.result.config.x_percent == 12.0
    assert controller.state.config.x_percent == 12.0


def test_latest_cheap_value_wins_and_stale_results_are_dropped(qtbot, controller, monkeypatch):
    _slow_rescore(monkeypatch, controller.session, 0.3)
    published = []
    controller.state.result_changed.connect(lambda r: published.append(r.config.x_percent))
    for value in (10.0, 20.0, 30.0):  # faster than a re-score: one runs, the rest wait
        controller.set_cheap(x_percent=value)
    qtbot.waitUntil(lambda: controller.idle and bool(published), timeout=10_000)
    assert published == [30.0], f"published {published}: a stale re-score was shown"
    assert controller.session.config.x_percent == 30.0


def test_cheap_setter_refuses_an_expensive_field(controller):
    with pytest.raises(ValueError, match="Apply"):
        controller.set_cheap(c_thr=0.05)


def test_unknown_known_good_parts_are_reported_once_and_fall_back(controller):
    state = controller.state
    state.set_policy(DecisionPolicy(reference=("no_such_part",)))
    assert len(controller.errors) == 1 and "no_such_part" in controller.errors[0]
    assert state.decision is not None and state.decision.image.source == "auto"
    state.set_policy(state.policy.replace(min_area_px=40))  # decided again: not shown again
    assert len(controller.errors) == 1
    assert state.decision.min_area_px == 40


def test_a_typed_cut_is_kept_through_a_rescore(qtbot, controller):
    state = controller.state
    value = float(sorted(state.result.image_scores)[-3])
    state.set_policy(state.policy.replace(image=value))
    assert state.decision.image.value == value and state.decision.image.source == "user"
    with qtbot.waitSignal(state.result_changed, timeout=10_000):
        controller.set_cheap(rscon_window=3)
    assert state.decision.image.value == value and state.policy.image == value


def test_rerun_rescans_and_says_what_changed(qtbot, controller, monkeypatch):
    scanned = []

    def rescan(self, dataset):
        scanned.append(dataset)
        return SimpleNamespace(added=["a", "b", "c"], removed=["x"], changed=[], kept=[])

    monkeypatch.setattr(InspectionSession, "rescan", rescan, raising=False)
    messages = []
    controller.message.connect(lambda text, _ms: messages.append(text))
    with qtbot.waitSignal(controller.ran, timeout=60_000):
        assert controller.rerun()
    assert len(scanned) == 1 and scanned[0].root == controller.state.dataset.root
    assert "3 new parts, 1 removed, extracting only those" in messages
    assert controller.errors == []


def test_rescan_words():
    words = rescan_words(SimpleNamespace(added=[1], removed=[], changed=[1, 2], kept=[]))
    assert words == "1 new part, 2 changed, extracting only those"
    assert rescan_words(SimpleNamespace(added=[], removed=[], changed=[], kept=[1])).startswith(
        "No new"
    )


def test_clear_cache_empties_the_engine_cache_and_reports(controller):
    from engine.session.cache import cache_dir

    cached = cache_dir() / f"{'ab' * 32}.h5"  # a session file: 64 hex digits
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"x" * 1_234_567)
    messages = []
    controller.message.connect(lambda text, _ms: messages.append(text))
    assert controller.cache_usage() == 1_234_567
    assert controller.clear_cache() == 1_234_567
    assert not cached.exists() and "1.2 MB" in messages[-1] and controller.cache_usage() == 0


def test_format_bytes():
    assert [format_bytes(n) for n in (512, 2_500, 3_400_000, 7_100_000_000)] == [
        "512 B", "2.5 kB", "3.4 MB", "7.1 GB"]  # fmt: skip


def test_policies_are_stored_per_dataset_and_survive_bad_entries(settings, fresh_session):
    from dataclasses import replace

    from musc_gui.preferences import load_policy, policy_key, save_policy

    dataset = fresh_session.dataset
    other = replace(dataset, category="other")
    policy = DecisionPolicy(image="max-f1", pixel=0.42, min_area_px=12, min_area_mm2=0.5,
                            reference=("good_000", "good_001"))  # fmt: skip
    save_policy(settings, dataset, policy)
    assert load_policy(settings, dataset) == policy
    assert load_policy(settings, other) == DecisionPolicy()  # another category: its own
    save_policy(settings, dataset, DecisionPolicy(image=0.25))
    assert load_policy(settings, dataset).image == 0.25
    settings.setValue(policy_key(dataset), '{"image": "sometimes"}')
    assert load_policy(settings, dataset) == DecisionPolicy()


def test_a_known_good_folder_is_scored_with_the_batch_and_sets_the_cuts(
    qtbot, controller, tmp_path
):
    import shutil

    good = next(s for s in controller.state.dataset.samples if s.label == 0)
    assert good.xyz_path is not None
    for kind, path in (("rgb", good.rgb_path), ("xyz", good.xyz_path)):
        (tmp_path / "ref" / kind).mkdir(parents=True, exist_ok=True)
        for stem in ("a", "b"):
            shutil.copy(path, tmp_path / "ref" / kind / f"{stem}{path.suffix}")
    before = len(controller.state.result.samples)
    with qtbot.waitSignal(controller.ran, timeout=120_000):
        assert controller.add_known_good(str(tmp_path / "ref" / "rgb" / "*.png"))
    state = controller.state
    assert len(state.result.samples) == before + 2
    assert len(state.policy.reference) == 2
    assert set(state.policy.reference) <= set(state.result.names)
    assert state.decision.image.source == "reference"
    assert state.decision.image.expected_false_reject == pytest.approx(1 / 3)
    assert controller.errors == []
    qtbot.waitUntil(lambda: controller.idle, timeout=60_000)
    with qtbot.waitSignal(controller.ran, timeout=120_000):  # F5 keeps them in the batch
        assert controller.rerun()
    assert len(state.result.samples) == before + 2 and state.decision.image.source == "reference"
    assert controller.errors == []


def test_a_known_good_pattern_that_matches_nothing_is_one_message(controller, tmp_path):
    assert not controller.add_known_good(str(tmp_path / "nothing*.png"))
    assert len(controller.errors) == 1 and "no known-good images found" in controller.errors[0]

"""EngineWorker / EngineRunner: results, cancellation, errors; the re-score; one progress bar."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import MuscConfig
from engine.data.samples import DatasetIndex, Sample
from engine.errors import InvalidInputError
from engine.progress import Progress
from engine.session.session import InspectionSession
from engine.session.stages import Stage
from musc_gui.run_progress import PLAN, RunProgress, plan_event
from musc_gui.session_cache import rescore_steps, update_run_and_save
from musc_gui.worker import EngineRunner, error_message, rescore_now

TIMEOUT = 120_000


def _fresh_session(scored_line, **changes) -> InspectionSession:
    session, _ = scored_line
    config = session.config.replace(**changes)
    return InspectionSession(session.dataset, config)


def test_run_returns_result_with_progress(qtbot, scored_line):
    session = _fresh_session(scored_line, modality="2d")
    runner = EngineRunner()
    events = []
    runner.yielded.connect(events.append)
    with qtbot.waitSignal(runner.returned, timeout=TIMEOUT) as blocker:
        with qtbot.waitSignal(runner.finished, timeout=TIMEOUT):
            runner.start(session)
    result = blocker.args[0]
    assert len(result.samples) == len(session.dataset.samples)
    assert events and all(isinstance(e, Progress) for e in events)
    assert not runner.running


def test_cancel_mid_run_aborts_and_session_stays_usable(qtbot, scored_line):
    session = _fresh_session(scored_line)
    runner = EngineRunner()
    aborted = []
    runner.aborted.connect(lambda: aborted.append(True))
    # cancel on the first progress event, i.e. within the first step of the first stage
    runner.yielded.connect(lambda _event: runner.cancel())
    with qtbot.waitSignal(runner.finished, timeout=TIMEOUT):
        runner.start(session)
    assert aborted == [True]
    assert session.cancel.cancelled
    runner.yielded.disconnect()
    with qtbot.waitSignal(runner.returned, timeout=TIMEOUT) as blocker:
        runner.start(session)  # installs a fresh CancelToken
    assert not session.cancel.cancelled
    assert np.isfinite(blocker.args[0].image_scores).all()
    qtbot.waitUntil(lambda: not runner.running, timeout=TIMEOUT)


def test_engine_error_is_one_message(qtbot, tmp_path, scored_line):
    session, _ = scored_line
    only = session.dataset.samples[0]
    dataset = DatasetIndex(root=tmp_path / "one", layout="folder", category="one",
                           samples=[Sample(only.name, only.rgb_path)])  # fmt: skip
    lonely = InspectionSession(dataset, MuscConfig(modality="2d", backbone="efficientnet_lite0"))
    runner = EngineRunner()
    messages = []
    runner.errored.connect(messages.append)
    with qtbot.waitSignal(runner.finished, timeout=TIMEOUT):
        runner.start(lonely)
    assert len(messages) == 1
    assert "only 1 of 1 samples" in messages[0] and str(tmp_path / "one") in messages[0]


def test_plain_generator_errors_and_cancel_before_start(qtbot):
    def broken():
        yield Progress("load", 0, 1)
        raise FileNotFoundError(2, "No such file or directory", "/x/part.png")

    class Fake:
        cancel = None

        def run(self):
            return broken()

    runner = EngineRunner()
    with qtbot.waitSignal(runner.errored, timeout=5000) as blocker:
        runner.start(Fake())
    assert "/x/part.png" in blocker.args[0] and "FileNotFoundError" in blocker.args[0]
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)


def test_error_message_keeps_engine_text():
    assert error_message(InvalidInputError("/a/b.tiff: bad")) == "/a/b.tiff: bad"


def test_apply_recomputes_only_stale_stages(qtbot, scored_line):
    session, _ = scored_line
    tokens = session.snapshot().stages[Stage.EXTRACT_2D]
    runner = EngineRunner()
    config = session.config.replace(c_thr=0.02)
    with qtbot.waitSignal(runner.returned, timeout=TIMEOUT):
        runner.start(session, update_run_and_save(session, config))
    qtbot.waitUntil(lambda: not runner.running, timeout=TIMEOUT)
    assert session.config.c_thr == 0.02
    assert session.snapshot().stages[Stage.EXTRACT_2D] is tokens  # the 2D features were kept


@pytest.mark.parametrize("changes", [{"x_percent": 10.0}, {"fusion": "scaled"},
                                     {"rscon_window": 3, "blur_sigma": 2.0}])  # fmt: skip
def test_rescore_now_is_fast_and_changes_scores(scored_line, changes):
    session, _ = scored_line
    before = session.rescore().image_scores.copy()
    cache = dict(session._cache)
    result, _ = rescore_now(session, changes)
    for key, value in changes.items():
        assert getattr(result.config, key) == value
    assert not np.allclose(before, result.image_scores)
    assert all(session._cache[k] is v for k, v in cache.items())
    # leave the shared session as the other tests expect it
    rescore_now(session, {k: getattr(MuscConfig(), k) for k in changes})


def test_work_without_a_session(qtbot):
    def steps():
        yield Progress("write", 1, 2)
        return ["a.pdf"]

    runner = EngineRunner()
    with qtbot.waitSignal(runner.returned, timeout=5000) as blocker:
        runner.start(None, steps)
    assert blocker.args[0] == ["a.pdf"]
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)


def test_wait_returns_when_a_cancelled_run_ends_without_the_event_loop(qtbot):
    """Closing the window cancels, then blocks the GUI thread in wait(): it must not hang."""
    import time

    def steps():
        while True:
            time.sleep(0.01)
            yield Progress("endless", 0, 1)

    runner = EngineRunner()
    with qtbot.waitSignal(runner.started, timeout=5000):
        runner.start(None, steps)
    runner.cancel()
    began = time.monotonic()
    assert runner.wait(10_000)  # no event processing here, as in closeEvent
    assert time.monotonic() - began < 5


def test_rescore_steps_run_in_a_worker(qtbot, scored_line):
    session = InspectionSession.from_snapshot(scored_line[0].dataset, scored_line[0].snapshot())
    session.rescore()
    runner = EngineRunner()
    with qtbot.waitSignal(runner.returned, timeout=TIMEOUT) as blocker:
        runner.start(session, rescore_steps(session, {"x_percent": 7.0}))
    assert blocker.args[0].config.x_percent == 7.0 and session.config.x_percent == 7.0
    qtbot.waitUntil(lambda: not runner.running, timeout=5000)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


WEIGHTS = {"extract 2D": 5.0, "aggregate 2D": 1.0, "mutual scoring 2D": 2.0, "read-out": 0.2,
           "extract 3D": 4.0, "mutual scoring 2D+3D with CAE": 4.0}  # fmt: skip


def _run(progress: RunProgress, clock: _Clock, plan: list[tuple[str, int, float]], weights=None):
    """Feed a run of (stage, steps, seconds per step); returns (fraction, eta) after each."""
    seen = [progress.update(plan_event((stage for stage, _, _ in plan), weights or WEIGHTS))]
    etas = []
    for stage, steps, seconds in plan:
        for done in range(1, steps + 1):
            clock.now += seconds
            seen.append(progress.update(Progress(stage, done, steps)))
            etas.append((clock.now, progress.eta_seconds()))
    return seen, etas


def test_one_bar_across_stages_never_goes_back():
    clock = _Clock()
    progress = RunProgress(clock)
    progress.start(["choose backbones"])
    first = progress.update(Progress("choose backbones", 1, 1))
    assert 0 < first < 0.1
    plan = [("extract 2D", 10, 0.5), ("aggregate 2D", 3, 0.3), ("mutual scoring 2D", 5, 0.4),
            ("read-out", 1, 0.05)]  # fmt: skip
    seen, _ = _run(progress, clock, plan)
    assert all(b >= a for a, b in zip(seen, seen[1:], strict=False)), seen
    assert seen[0] == first and seen[-1] == pytest.approx(1.0)
    # extract 2D (weight 5) is the larger part of the bar, not one stage in four
    assert seen[10] == pytest.approx(first + (1 - first) * 5 / 8.2)


def test_sub_steps_of_a_stage_count_towards_it():
    progress = RunProgress(_Clock())
    stages = ["extract 3D", "mutual scoring 2D+3D with CAE", "read-out"]
    progress.update(plan_event(stages, WEIGHTS))
    extracted = progress.update(Progress("extract 3D", 4, 4))
    inside = progress.update(Progress("mutual scoring 2D", 1, 2))  # a sub-step of the CAE stage
    assert extracted == pytest.approx(4.0 / 8.2)
    assert inside == pytest.approx((4.0 + 4.0 * 0.5) / 8.2)
    assert progress.update(Progress("extract 3D", 3, 4)) == inside  # a late event: no change
    # its first of three rounds done is less than the half already shown: the bar holds
    assert progress.update(Progress("cross-modal enhancement (1/3)", 1, 1)) == inside


def test_rounds_named_in_a_label_fill_their_stage_in_turn():
    progress = RunProgress(_Clock())
    progress.update(plan_event(["mutual scoring 2D", "read-out"], WEIGHTS))
    first = progress.update(Progress("mutual scoring 2D (layer 1/2)", 105, 105))
    assert first == pytest.approx(2.0 * 0.5 / 2.2)
    second = progress.update(Progress("mutual scoring 2D (layer 2/2)", 21, 105))
    assert second == pytest.approx(2.0 * 0.6 / 2.2)


def test_eta_is_the_whole_run_not_the_current_stage():
    clock = _Clock()
    progress = RunProgress(clock)
    progress.start()
    # each stage takes as long as its weight says: the ETA must be the true time left
    plan = [("extract 2D", 10, 1.0), ("aggregate 2D", 2, 1.0), ("mutual scoring 2D", 4, 1.0)]
    _, etas = _run(progress, clock, plan, {"extract 2D": 10, "aggregate 2D": 2,
                                           "mutual scoring 2D": 4})  # fmt: skip
    total = 16.0
    for now, eta in etas:
        if eta is not None and now < total:
            assert eta == pytest.approx(total - now, rel=0.35), (now, eta)
    assert etas[4][1] is not None and etas[4][1] > 8  # after half of extract 2D: most is left
    assert PLAN == "plan"


def test_a_plan_weighs_by_measured_timings_and_scales_the_rest():
    from musc_gui.run_progress import STAGE_WEIGHTS

    event = plan_event(["extract 2D", "aggregate 2D"], {"extract 2D": 30.0})
    weights = dict(line.split("\t") for line in event.message.splitlines())
    scale = 30.0 / STAGE_WEIGHTS["extract 2D"]
    assert float(weights["extract 2D"]) == 30.0
    assert float(weights["aggregate 2D"]) == pytest.approx(STAGE_WEIGHTS["aggregate 2D"] * scale)

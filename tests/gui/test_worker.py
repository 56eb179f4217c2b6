"""EngineWorker / EngineRunner: results, cancellation, errors, and the synchronous re-score."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import MuscConfig
from engine.data.samples import DatasetIndex, Sample
from engine.errors import InvalidInputError
from engine.progress import Progress
from engine.session.session import InspectionSession
from engine.session.stages import Stage
from musc_gui.session_cache import update_run_and_save
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
